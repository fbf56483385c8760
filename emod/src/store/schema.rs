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
        /// The compact key samples and roll-ups use (`migrations/2026-12-09-000001_compact_samples`).
        no -> Integer,
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
        /// The compact key samples use.
        no -> Integer,
    }
}

diesel::table! {
    samples (session_no, modality, t) {
        t -> BigInt,
        session_no -> Integer,
        user_no -> Integer,
        modality -> SmallInt,
        emotion -> SmallInt,
        confidence -> SmallInt,
        p_angry -> SmallInt,
        p_disgust -> SmallInt,
        p_fear -> SmallInt,
        p_happy -> SmallInt,
        p_sad -> SmallInt,
        p_surprise -> SmallInt,
        p_neutral -> SmallInt,
        p_calm -> SmallInt,
    }
}

diesel::table! {
    /// Per-connection TEMP staging table for PostgreSQL `COPY` ingest (created on demand,
    /// emptied at commit); not part of the migrations.
    samples_in (session_no, modality, t) {
        t -> BigInt,
        session_no -> Integer,
        user_no -> Integer,
        modality -> SmallInt,
        emotion -> SmallInt,
        confidence -> SmallInt,
        p_angry -> SmallInt,
        p_disgust -> SmallInt,
        p_fear -> SmallInt,
        p_happy -> SmallInt,
        p_sad -> SmallInt,
        p_surprise -> SmallInt,
        p_neutral -> SmallInt,
        p_calm -> SmallInt,
    }
}

diesel::table! {
    sample_counts_hourly (user_no, hour, modality, emotion) {
        user_no -> Integer,
        hour -> BigInt,
        modality -> SmallInt,
        emotion -> SmallInt,
        n -> BigInt,
    }
}

diesel::table! {
    sample_counts_minute (user_no, minute, modality, emotion) {
        user_no -> Integer,
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
diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    sessions,
    samples,
    sample_counts_hourly,
    sample_counts_minute,
    audit_log
);
