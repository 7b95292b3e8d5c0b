//! Loading: defaults, then the TOML file, then `ROOTWARDEN_<SECTION>__<KEY>` variables,
//! deserialized key by key so that a bad key hides nothing else and keeps its default, and
//! the note that no file was read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::suggest::{unknown_key, unknown_section};
use super::{
    AwsConfig, Config, ConfigError, IntakeConfig, PolicyConfig, ResultsConfig, SessionsConfig, ShutdownConfig, TelemetryConfig,
    WorkersConfig,
};

/// Environment keys whose values are comma-separated lists.
const LIST_KEYS: [&str; 7] = [
    "policy.allowed_tasks",
    "policy.allowed_accounts",
    "policy.denied_accounts",
    "policy.denied_organizational_units",
    "policy.allowed_senders",
    "policy.require_ticket",
    "policy.require_approval",
];

impl Config {
    /// Loads defaults, then the TOML file at `path` (which must exist when `required`), then
    /// `ROOTWARDEN_*` variables from `env`, and validates the result. When no file was read, the
    /// problems start with a sentence saying so and where it looked ([`missing_file_note`]).
    pub fn load(path: &Path, required: bool, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let sources = Sources::read(path, required, env)?;
        sources.explain(Self::checked(&sources.merged, &sources.variables))
    }

    /// Loads like [`Config::load`] but checks only that every key is known and well typed: the
    /// client commands (`submit`, `sweep`, `features`) need a few keys, not a complete daemon
    /// configuration.
    pub fn load_for_client(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let sources = Sources::read(path, required, env)?;
        let loaded = Self::from_merged(&sources.merged, &sources.variables);
        let result = if loaded.problems.is_empty() { Ok(loaded.config) } else { Err(ConfigError { problems: loaded.problems }) };
        sources.explain(result)
    }

    /// Parses a TOML document (defaults fill what it leaves out) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let merged = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|error| ConfigError { problems: vec![error.to_string()] })?;
        Self::checked(&merged, &BTreeMap::new())
    }

    /// Deserializes and validates, reporting the problems of both steps together. A key that did
    /// not load keeps its default; what validation would say of that default is left out.
    fn checked(merged: &config::Config, variables: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let Loaded { config, mut problems, failed } = Self::from_merged(merged, variables);
        if let Err(error) = config.validate() {
            problems.extend(error.problems.into_iter().filter(|problem| !failed.iter().any(|key| names(problem, key))));
        }
        if problems.is_empty() { Ok(config) } else { Err(ConfigError { problems }) }
    }

    /// Deserializes key by key, so that a bad key hides neither another section nor the other
    /// keys of its own section: each key that is unknown or does not deserialize is reported
    /// (with the closest valid key, or the accepted forms) and keeps its default.
    fn from_merged(merged: &config::Config, variables: &BTreeMap<String, String>) -> Loaded {
        let mut loaded = Loaded { config: Config::default(), problems: Vec::new(), failed: BTreeSet::new() };
        let table = match merged.clone().try_deserialize::<Table>() {
            Ok(table) => table,
            Err(error) => {
                loaded.problems.push(error.to_string());
                return loaded;
            }
        };
        let sections = sections();
        for (name, value) in &table {
            if !SECTIONS.contains(&name.as_str()) {
                loaded.problems.push(unknown_section(name, value, &sections));
            } else if !value.is_object() {
                loaded.problems.push(format!("`{name}` must be a section (`[{name}]` with its keys below it), not a value"));
            }
        }
        let config = &mut loaded.config;
        let mut section = Section { table: &table, sections: &sections, variables, problems: &mut loaded.problems };
        config.aws = section.load("aws", &mut loaded.failed);
        config.intake = section.load("intake", &mut loaded.failed);
        config.results = section.load("results", &mut loaded.failed);
        config.workers = section.load("workers", &mut loaded.failed);
        config.sessions = section.load("sessions", &mut loaded.failed);
        config.policy = section.load("policy", &mut loaded.failed);
        config.telemetry = section.load("telemetry", &mut loaded.failed);
        config.shutdown = section.load("shutdown", &mut loaded.failed);
        loaded
    }
}

/// The sections of the configuration, by name.
pub(super) const SECTIONS: [&str; 8] = ["aws", "intake", "results", "workers", "sessions", "policy", "telemetry", "shutdown"];

/// The sentence saying that no configuration file was read and where one was looked for, when
/// `path` is the default path (`required` false) and there is no file there; `None` when there
/// is one. [`Config::load`] puts it before the problems of a configuration it refuses; print it
/// too when a configuration from defaults and variables alone is accepted.
pub fn missing_file_note(path: &Path, required: bool) -> Option<String> {
    (!required && matches!(path.try_exists(), Ok(false))).then(|| {
        format!(
            "no configuration file was read: there is none at {} (the default path), so only the defaults and \
             ROOTWARDEN_<SECTION>__<KEY> variables apply; pass --config PATH or set ROOTWARDEN_CONFIG to read another file",
            path.display()
        )
    })
}

/// What loading found: the configuration, and each problem as it was found.
struct Loaded {
    config: Config,
    problems: Vec<String>,
    /// `section.key` of every known key whose value did not load.
    failed: BTreeSet<String>,
}

/// The configuration as the file and the variables give it, before it is typed. Sorted by key,
/// so problems are reported in one order whatever order the `config` crate's maps hand them
/// over in (serde_json's own map keeps insertion order in this crate, and `config`'s does not).
type Table = BTreeMap<String, serde_json::Value>;

/// What [`Config::load`] read: the merged settings, the variables that set some of them, and
/// the note that no file was read.
struct Sources {
    merged: config::Config,
    /// `section.key` → the `ROOTWARDEN_…` variable that set it.
    variables: BTreeMap<String, String>,
    note: Option<String>,
}

impl Sources {
    fn read(path: &Path, required: bool, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        if required && matches!(path.try_exists(), Ok(false)) {
            return Err(ConfigError {
                problems: vec![format!(
                    "no configuration file was read: {} was not found (given by --config or ROOTWARDEN_CONFIG)",
                    path.display()
                )],
            });
        }
        // Only `ROOTWARDEN_<SECTION>__<KEY>` names are settings; others that share the prefix
        // (ROOTWARDEN_CONFIG, the config file's path) are not.
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.strip_prefix("ROOTWARDEN_").is_some_and(|rest| rest.contains("__")))
            .collect();
        let variables =
            env.keys().map(|name| (name["ROOTWARDEN_".len()..].to_lowercase().replace("__", "."), name.clone())).collect();
        let mut environment = config::Environment::with_prefix("ROOTWARDEN")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .source(Some(env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let merged = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml).required(required))
            .add_source(environment.try_parsing(true))
            .build()
            .map_err(|error| ConfigError { problems: vec![error.to_string()] })?;
        Ok(Self { merged, variables, note: missing_file_note(path, required) })
    }

    /// Puts the note that no file was read before the problems, which it may explain.
    fn explain(&self, result: Result<Config, ConfigError>) -> Result<Config, ConfigError> {
        result.map_err(|mut error| {
            error.problems.splice(0..0, self.note.clone());
            error
        })
    }
}

/// Loads the sections of the merged settings, key by key.
struct Section<'a> {
    table: &'a Table,
    sections: &'a [(&'static str, &'static [&'static str])],
    variables: &'a BTreeMap<String, String>,
    problems: &'a mut Vec<String>,
}

impl Section<'_> {
    /// The section `name` with every key that loads; each other key becomes a problem (and, if
    /// known, a `failed` key) and keeps its default.
    fn load<T: serde::de::DeserializeOwned + Default>(&mut self, name: &str, failed: &mut BTreeSet<String>) -> T {
        let Some(serde_json::Value::Object(keys)) = self.table.get(name) else { return T::default() };
        let keys: BTreeMap<&String, &serde_json::Value> = keys.iter().collect();
        let known = field_names::<T>();
        let mut good = Table::new();
        for (key, value) in keys {
            let origin = self.variables.get(&format!("{name}.{key}")).map(|variable| format!(" (set by {variable})"));
            let origin = origin.unwrap_or_default();
            if !known.contains(&key.as_str()) {
                self.problems.push(unknown_key(name, key, &origin, self.sections));
                continue;
            }
            let alone = serde_json::Map::from_iter([(key.clone(), value.clone())]);
            match serde_json::from_value::<T>(alone.into()) {
                Ok(_) => {
                    good.insert(key.clone(), value.clone());
                }
                Err(error) => {
                    self.problems.push(format!("{name}.{key}{origin}: {error}"));
                    failed.insert(format!("{name}.{key}"));
                }
            }
        }
        serde_json::from_value(serde_json::Value::Object(good.into_iter().collect())).unwrap_or_else(|error| {
            // Each key loaded alone; together they always do. Should that change, say so.
            self.problems.push(format!("[{name}]: {error}"));
            T::default()
        })
    }
}

/// Every section with its keys, as the types declare them.
fn sections() -> [(&'static str, &'static [&'static str]); 8] {
    [
        ("aws", field_names::<AwsConfig>()),
        ("intake", field_names::<IntakeConfig>()),
        ("results", field_names::<ResultsConfig>()),
        ("workers", field_names::<WorkersConfig>()),
        ("sessions", field_names::<SessionsConfig>()),
        ("policy", field_names::<PolicyConfig>()),
        ("telemetry", field_names::<TelemetryConfig>()),
        ("shutdown", field_names::<ShutdownConfig>()),
    ]
}

/// The field names a struct's `Deserialize` asks for (its keys), read by handing it a
/// deserializer that records them and refuses everything.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// True when `problem` names the key `key` (`section.key`, not a longer key it begins).
fn names(problem: &str, key: &str) -> bool {
    problem.match_indices(key).any(|(at, _)| {
        !problem[at + key.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && !problem[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::MINIMAL;

    #[test]
    fn unknown_keys_in_several_sections_are_all_reported() {
        let error = Config::from_toml(&format!("{MINIMAL}\n[workers]\nconcurency = 3\n[sessions]\ncapacty = 1\n[bogus]\nx = 1"))
            .unwrap_err();
        let text = error.problems.join("\n");
        assert!(text.contains("concurency"), "{text}");
        assert!(text.contains("capacty"), "{text}");
        assert!(text.contains("unknown section `bogus`"), "{text}");
    }

    #[test]
    fn environment_overrides_the_file_and_splits_lists() {
        let dir = std::env::temp_dir().join(format!("rootwarden-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rootwarden.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let env = [
            ("ROOTWARDEN_WORKERS__CONCURRENCY", "7"),
            ("ROOTWARDEN_POLICY__DENIED_ACCOUNTS", "111122223333,444455556666"),
            ("ROOTWARDEN_SESSIONS__MIN_REMAINING", "3m"),
            ("UNRELATED", "x"),
            ("ROOTWARDEN_CONFIG", "/elsewhere/rootwarden.toml"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::load(&path, true, env).unwrap();
        assert_eq!(config.workers.concurrency, 7);
        assert_eq!(config.policy.denied_accounts, ["111122223333", "444455556666"]);
        assert_eq!(config.sessions.min_remaining, Duration::from_secs(180));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_required_file_is_an_error() {
        let error = Config::load(Path::new("/nonexistent/rootwarden.toml"), true, []).unwrap_err();
        assert!(error.problems[0].contains("not found"), "{error}");
    }
}
