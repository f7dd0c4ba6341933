//! Where the operator commands find their broker and key, and where they keep their sessions.
//!
//! - The config file (`kubeline login` writes it, `kubeline logout` removes it):
//!   `$KUBELINE_CONFIG`, else `$XDG_CONFIG_HOME/kubeline/config.toml`, else
//!   `~/.config/kubeline/config.toml`; mode 0600 in a 0700 folder.
//! - The session cache: `$XDG_CACHE_HOME/kubeline/sessions.json`, else
//!   `~/.cache/kubeline/sessions.json`; one session per (broker, cluster, API key), mode 0600.
//!
//! A broker and key are taken from the flags (`--broker`, `--api-key`), else the environment
//! (`KUBELINE_BROKER_URL`, `KUBELINE_API_KEY`), else the config file. The file's key goes only to
//! the file's broker: another broker given by flag or environment needs its own key.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::normalize_url;

/// The flags every client command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Base URL of the broker (http://host:port or https://…). Default: $KUBELINE_BROKER_URL,
    /// then the config file written by `kubeline login`.
    #[arg(long, env = "KUBELINE_BROKER_URL", value_name = "URL")]
    pub broker: Option<String>,

    /// API key. Default: $KUBELINE_API_KEY, then the config file (for its own broker only).
    /// Prefer the environment or `kubeline login`: a flag is visible to other local users.
    #[arg(
        long,
        env = "KUBELINE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,

    /// PEM file of CA certificates to trust for an https:// broker, besides the built-in roots
    /// (a broker behind a private CA). Default: $KUBELINE_CA_FILE, then the config file.
    #[arg(long, env = "KUBELINE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// What `kubeline login` saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Base URL of the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// API key for that broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// CA certificates (PEM file) to trust for that broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// A broker and the key to use there.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub broker: String,
    pub api_key: String,
    /// CA certificates to trust besides the built-in roots.
    pub ca_file: Option<PathBuf>,
}

impl Target {
    /// A client of this broker.
    pub fn client(&self) -> Result<crate::client::Client, String> {
        crate::client::Client::new(&self.broker, &self.api_key, self.ca_file.as_deref())
    }
}

/// An environment variable, unless unset or empty.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// An XDG base folder: the variable if it holds an absolute path (the spec ignores relative
/// ones), else `~/<fallback>`.
fn xdg_dir(var: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(dir) = env_path(var).filter(|p| p.is_absolute()) {
        return Ok(dir);
    }
    match env_path("HOME") {
        Some(home) => Ok(home.join(fallback)),
        None => Err(format!(
            "cannot tell where your {fallback} folder is: neither {var} nor HOME is set (set \
             one, or KUBELINE_CONFIG for the config file)"
        )),
    }
}

/// The config file's path.
pub fn config_path() -> Result<PathBuf, String> {
    if let Some(path) = env_path("KUBELINE_CONFIG") {
        return Ok(path);
    }
    Ok(xdg_dir("XDG_CONFIG_HOME", ".config")?
        .join("kubeline")
        .join("config.toml"))
}

/// The session cache's path.
pub fn sessions_path() -> Result<PathBuf, String> {
    Ok(xdg_dir("XDG_CACHE_HOME", ".cache")?
        .join("kubeline")
        .join("sessions.json"))
}

/// Reads the config file; `None` when there is none.
pub fn load_config(path: &Path) -> Result<Option<ConfigFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ));
        }
    };
    warn_if_readable_by_others(path);
    toml::from_str(&text).map(Some).map_err(|e| {
        format!(
            "the config file {} is not valid: {}; fix it, or remove it and run `kubeline login` \
             again",
            path.display(),
            e.message()
        )
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "kubeline: warning: {} holds an API key and other users may read it (mode {:o}); \
             run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Writes `contents` to `path` readable by the user only (0600; its folder 0700 when created),
/// atomically: a reader sees the old file or the new one, never a part.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        create_private_dir(dir)?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            // The mode of `open` applies only to a new file.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))
}

/// The broker and key for a client command: flags, else environment (clap has merged those
/// into `args`), else the config file.
pub fn resolve(args: &ClientArgs) -> Result<Target, String> {
    let path = config_path()?;
    let file = load_config(&path)?.unwrap_or_default();
    resolve_with(args, &file, &path)
}

fn resolve_with(args: &ClientArgs, file: &ConfigFile, path: &Path) -> Result<Target, String> {
    let given = args.broker.as_deref().filter(|b| !b.trim().is_empty());
    let broker = match given.or(file.broker.as_deref()) {
        Some(b) => normalize_url(b).map_err(|e| {
            if given.is_some() {
                format!("--broker (or KUBELINE_BROKER_URL): {e}")
            } else {
                format!("the broker in {}: {e}", path.display())
            }
        })?,
        None => {
            return Err(
                "no broker given: run `kubeline login --broker URL` once, or pass --broker URL \
                 (or set KUBELINE_BROKER_URL)"
                    .to_owned(),
            );
        }
    };
    let same_broker = file
        .broker
        .as_deref()
        .and_then(|b| normalize_url(b).ok())
        .is_some_and(|b| b == broker);
    // What the file says holds for its own broker only.
    let ca_file = args
        .ca_file
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| file.ca_file.clone().filter(|_| same_broker));
    if let Some(key) = args.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
        return Ok(Target {
            broker,
            api_key: key.trim().to_owned(),
            ca_file,
        });
    }
    match file.api_key.as_deref().filter(|_| same_broker) {
        Some(key) => Ok(Target {
            broker,
            api_key: key.to_owned(),
            ca_file,
        }),
        None => Err(format!(
            "no API key for {broker}: run `kubeline login --broker {broker}`, or pass --api-key \
             (or set KUBELINE_API_KEY){}",
            match &file.broker {
                Some(other) if file.api_key.is_some() && !same_broker => format!(
                    " (the key in {} is for {other} and is not sent elsewhere)",
                    path.display()
                ),
                _ => String::new(),
            }
        )),
    }
}

// === session cache ===

/// A session the CLI created and may use again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedSession {
    pub broker: String,
    pub cluster_id: String,
    /// [`key_id`] of the API key that owns it.
    pub key_id: String,
    pub session_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SessionFile {
    #[serde(default)]
    sessions: Vec<CachedSession>,
}

/// A name for an API key that does not reveal it: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The session cache file. A damaged or unreadable cache is treated as empty (sessions are
/// then created again); only a failure to write is reported.
pub struct SessionCache {
    path: PathBuf,
}

impl SessionCache {
    pub fn open() -> Result<Self, String> {
        Ok(Self {
            path: sessions_path()?,
        })
    }

    #[cfg(test)]
    fn at(path: PathBuf) -> Self {
        Self { path }
    }

    fn read(&self) -> SessionFile {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn write(&self, mut file: SessionFile) -> Result<(), String> {
        let now = Utc::now();
        file.sessions.retain(|s| s.expires_at > now);
        let json = serde_json::to_vec_pretty(&file).expect("the cache serializes");
        write_private(&self.path, &json)
    }

    /// The cached session for (broker, cluster, key) if it has more than `margin` left.
    pub fn get(
        &self,
        broker: &str,
        cluster_id: &str,
        key_id: &str,
        margin: chrono::Duration,
    ) -> Option<CachedSession> {
        let now = Utc::now();
        self.read().sessions.into_iter().find(|s| {
            s.broker == broker
                && s.cluster_id == cluster_id
                && s.key_id == key_id
                && s.expires_at > now + margin
        })
    }

    /// Keeps `session`, replacing any other of its (broker, cluster, key).
    pub fn put(&self, session: CachedSession) -> Result<(), String> {
        let mut file = self.read();
        file.sessions.retain(|s| {
            !(s.broker == session.broker
                && s.cluster_id == session.cluster_id
                && s.key_id == session.key_id)
        });
        file.sessions.push(session);
        self.write(file)
    }

    /// Forgets the session `session_id`.
    pub fn remove(&self, session_id: &str) -> Result<(), String> {
        let mut file = self.read();
        let before = file.sessions.len();
        file.sessions.retain(|s| s.session_id != session_id);
        if file.sessions.len() == before {
            return Ok(());
        }
        self.write(file)
    }

    /// Forgets and returns every session of `broker` owned by `key_id`.
    pub fn take_all(&self, broker: &str, key_id: &str) -> Result<Vec<CachedSession>, String> {
        let file = self.read();
        let (taken, kept): (Vec<_>, Vec<_>) = file
            .sessions
            .into_iter()
            .partition(|s| s.broker == broker && s.key_id == key_id);
        if !taken.is_empty() {
            self.write(SessionFile { sessions: kept })?;
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(broker: Option<&str>, key: Option<&str>) -> ClientArgs {
        ClientArgs {
            broker: broker.map(str::to_owned),
            api_key: key.map(str::to_owned),
            ca_file: None,
        }
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let path = Path::new("/cfg/config.toml");
        let file = ConfigFile {
            broker: Some("http://a:1/".into()),
            api_key: Some("file-key".into()),
            ca_file: Some("/cfg/ca.pem".into()),
        };
        let t = resolve_with(&args(None, None), &file, path).unwrap();
        assert_eq!(t.broker, "http://a:1");
        assert_eq!(t.api_key, "file-key");
        assert_eq!(t.ca_file.as_deref(), Some(Path::new("/cfg/ca.pem")));
        let mut with_ca = args(None, None);
        with_ca.ca_file = Some("/other/ca.pem".into());
        let t = resolve_with(&with_ca, &file, path).unwrap();
        assert_eq!(t.ca_file.as_deref(), Some(Path::new("/other/ca.pem")));
        // Same broker spelled differently: the file's key still applies.
        let t = resolve_with(&args(Some("http://A:1"), None), &file, path).unwrap();
        assert_eq!(t.api_key, "file-key");
        let t = resolve_with(&args(None, Some("flag-key")), &file, path).unwrap();
        assert_eq!(
            (t.broker.as_str(), t.api_key.as_str()),
            ("http://a:1", "flag-key")
        );
        let t = resolve_with(&args(Some("http://b:2"), Some("k2")), &file, path).unwrap();
        assert_eq!(
            (t.broker.as_str(), t.api_key.as_str()),
            ("http://b:2", "k2")
        );
    }

    #[test]
    fn the_files_key_is_never_sent_to_another_broker() {
        let path = Path::new("/cfg/config.toml");
        let file = ConfigFile {
            broker: Some("http://a:1".into()),
            api_key: Some("file-key".into()),
            ca_file: None,
        };
        let e = resolve_with(&args(Some("http://b:2"), None), &file, path).unwrap_err();
        assert!(
            e.starts_with("no API key for http://b:2: run `kubeline login"),
            "{e}"
        );
        assert!(
            e.contains("is for http://a:1 and is not sent elsewhere"),
            "{e}"
        );
    }

    #[test]
    fn missing_or_bad_settings_say_what_to_do() {
        let path = Path::new("/cfg/config.toml");
        let none = ConfigFile::default();
        let e = resolve_with(&args(None, Some("k")), &none, path).unwrap_err();
        assert!(
            e.contains("kubeline login --broker URL") && e.contains("--broker"),
            "{e}"
        );
        let e = resolve_with(&args(Some("b:80"), Some("k")), &none, path).unwrap_err();
        assert!(e.starts_with("--broker (or KUBELINE_BROKER_URL): "), "{e}");
        let bad = ConfigFile {
            broker: Some("nope".into()),
            ..ConfigFile::default()
        };
        let e = resolve_with(&args(None, Some("k")), &bad, path).unwrap_err();
        assert!(e.starts_with("the broker in /cfg/config.toml: "), "{e}");
    }

    #[test]
    fn config_files_round_trip_and_refuse_junk() {
        let dir = std::env::temp_dir().join(format!("kubeline-config-{}", std::process::id()));
        let path = dir.join("sub").join("config.toml");
        let file = ConfigFile {
            broker: Some("http://a:1".into()),
            api_key: Some("k\"ey".into()),
            ca_file: Some("/x/ca.pem".into()),
        };
        write_private(&path, toml::to_string(&file).unwrap().as_bytes()).unwrap();
        assert_eq!(load_config(&path).unwrap(), Some(file));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::write(&path, "broker = 3\n").unwrap();
        let e = load_config(&path).unwrap_err();
        assert!(
            e.contains("is not valid") && e.contains("kubeline login"),
            "{e}"
        );
        std::fs::write(&path, "brokr = \"http://a\"\n").unwrap();
        assert!(load_config(&path).is_err());
        assert_eq!(load_config(&dir.join("none.toml")).unwrap(), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_cache_keeps_one_session_per_broker_cluster_and_key() {
        let dir = std::env::temp_dir().join(format!("kubeline-cache-{}", std::process::id()));
        let cache = SessionCache::at(dir.join("sessions.json"));
        let later = Utc::now() + chrono::Duration::minutes(30);
        let s = |id: &str, cluster: &str, key: &str| CachedSession {
            broker: "http://a:1".into(),
            cluster_id: cluster.into(),
            key_id: key.into(),
            session_id: id.into(),
            expires_at: later,
        };
        let margin = chrono::Duration::seconds(10);
        assert_eq!(cache.get("http://a:1", "c1", "k1", margin), None);
        cache.put(s("s1", "c1", "k1")).unwrap();
        cache.put(s("s2", "c2", "k1")).unwrap();
        cache.put(s("s3", "c1", "k2")).unwrap();
        cache.put(s("s4", "c1", "k1")).unwrap();
        assert_eq!(
            cache
                .get("http://a:1", "c1", "k1", margin)
                .unwrap()
                .session_id,
            "s4"
        );
        assert_eq!(
            cache
                .get("http://a:1", "c1", "k2", margin)
                .unwrap()
                .session_id,
            "s3"
        );
        // Too close to its end: not offered.
        assert_eq!(
            cache.get("http://a:1", "c1", "k1", chrono::Duration::hours(1)),
            None
        );
        cache.remove("s4").unwrap();
        assert_eq!(cache.get("http://a:1", "c1", "k1", margin), None);
        let taken = cache.take_all("http://a:1", "k1").unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].session_id, "s2");
        assert!(cache.get("http://a:1", "c1", "k2", margin).is_some());
        // A damaged cache is an empty one.
        std::fs::write(dir.join("sessions.json"), "{").unwrap();
        assert_eq!(cache.get("http://a:1", "c1", "k2", margin), None);
        cache.put(s("s5", "c1", "k1")).unwrap();
        assert!(cache.get("http://a:1", "c1", "k1", margin).is_some());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn key_ids_do_not_show_the_key() {
        let id = key_id("kl_secret");
        assert_eq!(id.len(), 16);
        assert_ne!(id, key_id("kl_secreT"));
        assert!(!id.contains("secret"));
    }
}
