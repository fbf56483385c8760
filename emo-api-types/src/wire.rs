//! Declaring wire enums and filtered queries once.
//!
//! A wire enum's strings used to be written twice, in `#[serde(rename_all)]` and again in a
//! hand-written `as_str`/`FromStr`, and the two could drift apart. [`wire_enum!`] takes each
//! variant's wire name once and derives both from it. [`filtered_query!`] does the same for the
//! five sample filters (agent, from, to, emotion, modality) that several query strings share:
//! serde's `flatten` cannot be used there because it breaks `deny_unknown_fields` and the
//! number parsing of query strings.

/// Declares an enum whose variants travel as the given strings.
///
/// Generates the enum with serde using exactly those strings (and utoipa's schema with the
/// `openapi` feature), `ALL` in declaration order, `as_str`, `Display`, and a `FromStr` for
/// command lines and configuration that trims, ignores ASCII case and also takes the aliases
/// listed after `|`. `$what` names the thing in the error message.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:tt) {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:tt $(| $alias:tt)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($wire),+].len()] = [$($name::$variant),+];

            /// The wire name (what serde writes).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($wire $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{}` ({})",
                        $what,
                        $crate::wire::echo(s),
                        $crate::wire::one_of(&[$($wire),+])
                    )),
                }
            }
        }
    };
}

/// Declares a query-string type that takes the shared sample filters plus its own fields, and
/// rejects any other parameter (a misspelt filter must not silently widen an answer).
macro_rules! filtered_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
        #[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Username; agents may only name themselves. Absent = all agents (admins).
            pub agent: Option<String>,
            /// Inclusive lower bound on sample time (RFC 3339).
            pub from: Option<chrono::DateTime<chrono::Utc>>,
            /// Exclusive upper bound on sample time (RFC 3339).
            pub to: Option<chrono::DateTime<chrono::Utc>>,
            pub emotion: Option<$crate::Emotion>,
            /// Which estimates to count (stats default to `fused`; export takes all).
            pub modality: Option<$crate::Modality>,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// The shared sample filters of this query.
            pub fn filters(&self) -> $crate::Filters {
                $crate::Filters {
                    agent: self.agent.clone(),
                    from: self.from,
                    to: self.to,
                    emotion: self.emotion,
                    modality: self.modality,
                }
            }
        }
    };
}

/// `["a", "b", "c"]` → `"a, b or c"`, for error messages.
#[doc(hidden)]
/// What was sent, for an error message: at most 40 characters, escaped, so that an error never
/// echoes a large or unprintable input back.
pub fn echo(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    let more = if s.chars().nth(40).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}{more}", head.escape_debug())
}

pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::one_of;
    use crate::*;

    /// serde, `as_str`, `Display` and `FromStr` agree for every variant of every wire enum.
    fn agree<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr<Err = String>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for v in all {
            let name = v.to_string();
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(),
                *v
            );
            assert_eq!(name.parse::<T>().unwrap(), *v);
            assert_eq!(
                format!(" {} ", name.to_uppercase()).parse::<T>().unwrap(),
                *v
            );
        }
        assert!("nonsense".parse::<T>().is_err());
    }

    #[test]
    fn every_wire_enum_spells_its_names_once() {
        agree(&Emotion::ALL);
        agree(&Modality::ALL);
        agree(&Role::ALL);
        agree(&SessionStatus::ALL);
        agree(&SourceState::ALL);
        agree(&SessionSource::ALL);
        agree(&Bucket::ALL);
        agree(&HeatmapKind::ALL);
        agree(&ExportFormat::ALL);
        assert_eq!(HeatmapKind::WeekdayHour.as_str(), "weekday_hour");
        assert_eq!(
            "sideways".parse::<Modality>().unwrap_err(),
            "unknown modality `sideways` (face, voice or fused)"
        );
        // Aliases parse but never travel: serde keeps the one wire name.
        assert_eq!("Fearful".parse::<Emotion>().unwrap(), Emotion::Fear);
        assert!(serde_json::from_str::<Emotion>("\"fearful\"").is_err());
        assert_eq!(ExportFormat::default(), ExportFormat::Csv);
    }

    /// An unknown name is echoed in the error, but never more than 40 characters of it, escaped:
    /// a 1-MB `sources` entry must not come back in the 400's message.
    #[test]
    fn an_unknown_name_is_echoed_short_and_escaped() {
        let long = format!("x{}", "y".repeat(100_000));
        let e = long.parse::<SessionSource>().unwrap_err();
        assert!(e.len() < 120, "{e}");
        assert!(e.starts_with("unknown source `xyyy"), "{e}");
        assert!(e.contains("…` (camera, microphone or remote)"), "{e}");
        let e = "cam\u{1b}[2J".parse::<SessionSource>().unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }

    #[test]
    fn each_query_takes_only_its_own_parameters() {
        let q: TimelineQuery =
            serde_json::from_str(r#"{"agent":"ann","bucket":"day","tz_offset_minutes":60}"#)
                .unwrap();
        assert_eq!(q.bucket, Some(Bucket::Day));
        assert_eq!(q.filters().agent.as_deref(), Some("ann"));
        // Export's `format` is not a stats parameter, and stats' `bucket` is not export's.
        assert!(serde_json::from_str::<DistributionQuery>(r#"{"format":"csv"}"#).is_err());
        assert!(serde_json::from_str::<HeatmapQuery>(r#"{"format":"csv"}"#).is_err());
        assert!(serde_json::from_str::<ExportQuery>(r#"{"bucket":"day"}"#).is_err());
        let e: ExportQuery =
            serde_json::from_str(r#"{"format":"json","modality":"face"}"#).unwrap();
        assert_eq!(e.format, Some(ExportFormat::Json));
        assert_eq!(e.filters().modality, Some(Modality::Face));
    }

    #[test]
    fn lists_read_like_prose() {
        assert_eq!(one_of(&["csv"]), "csv");
        assert_eq!(one_of(&["csv", "json"]), "csv or json");
        assert_eq!(one_of(&["face", "voice", "fused"]), "face, voice or fused");
    }
}
