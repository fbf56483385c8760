//! Diesel table definitions; mirrors `migrations/` (one SQL dialect for both backends).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Nullable<Text>,
        role -> Text,
        password_hash -> Text,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        node -> Text,
        status -> Text,
        started_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        consent_at -> BigInt,
        sources -> Text,
        label -> Nullable<Text>,
        summary -> Nullable<Text>,
        dominant -> Nullable<SmallInt>,
    }
}

diesel::table! {
    samples (session_id, modality, t) {
        session_id -> Text,
        user_id -> Text,
        t -> BigInt,
        modality -> SmallInt,
        emotion -> SmallInt,
        confidence -> Float,
        p_angry -> Nullable<Float>,
        p_disgust -> Nullable<Float>,
        p_fear -> Nullable<Float>,
        p_happy -> Nullable<Float>,
        p_sad -> Nullable<Float>,
        p_surprise -> Nullable<Float>,
        p_neutral -> Nullable<Float>,
        p_calm -> Nullable<Float>,
    }
}

diesel::table! {
    /// Per-connection TEMP staging table for PostgreSQL `COPY` ingest (created on demand,
    /// emptied at commit); not part of the migrations.
    samples_in (session_id, modality, t) {
        session_id -> Text,
        user_id -> Text,
        t -> BigInt,
        modality -> SmallInt,
        emotion -> SmallInt,
        confidence -> Float,
        p_angry -> Nullable<Float>,
        p_disgust -> Nullable<Float>,
        p_fear -> Nullable<Float>,
        p_happy -> Nullable<Float>,
        p_sad -> Nullable<Float>,
        p_surprise -> Nullable<Float>,
        p_neutral -> Nullable<Float>,
        p_calm -> Nullable<Float>,
    }
}

diesel::table! {
    sample_counts_hourly (user_id, hour, modality, emotion) {
        user_id -> Text,
        hour -> BigInt,
        modality -> SmallInt,
        emotion -> SmallInt,
        n -> BigInt,
    }
}

diesel::table! {
    sample_counts_minute (user_id, minute, modality, emotion) {
        user_id -> Text,
        minute -> BigInt,
        modality -> SmallInt,
        emotion -> SmallInt,
        n -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> BigInt,
        actor_id -> Text,
        actor -> Text,
        action -> Text,
        target_user -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(samples -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    sessions,
    samples,
    sample_counts_hourly,
    sample_counts_minute,
    audit_log
);
