//! What a credential may do: [`Access`], one or more [`Grant`]s of a [`Scope`] on clusters.
//!
//! Clusters are named by patterns: an exact id (`prod-eu-1`), a glob where `*` stands for any
//! run of characters (`prod-*`, `*`), or either of those after `!` to deny. A grant reaches a
//! cluster when some allow pattern matches it and none of its deny patterns does: **deny
//! wins**. An API key has one grant; a JWT has one per `--jwt-grant` binding it matches, each
//! keeping its scope with its own clusters.

use std::fmt;
use std::str::FromStr;

use kubeline_shared::api::{MAX_CLUSTER_ID_LEN, check_cluster_id};

/// Most cluster patterns one credential may carry.
pub const MAX_PATTERNS: usize = 32;

pub use kubeline_shared::api::Scope;

/// One cluster pattern: an id or a glob, allowing or (after `!`) denying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPattern {
    deny: bool,
    glob: String,
}

impl ClusterPattern {
    /// Whether the pattern (ignoring `!`) matches `cluster_id`.
    fn matches(&self, cluster_id: &str) -> bool {
        glob_match(self.glob.as_bytes(), cluster_id.as_bytes())
    }
}

impl FromStr for ClusterPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (deny, glob) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        // A glob is a cluster id in which `*` may also appear.
        let literal: String = glob.chars().filter(|&c| c != '*').collect();
        let ok = !glob.is_empty()
            && glob.len() <= MAX_CLUSTER_ID_LEN
            && (literal.is_empty() || check_cluster_id(&literal).is_ok());
        if !ok {
            return Err(format!(
                "invalid cluster pattern {s:?}: use a cluster id or a glob such as `prod-*` or \
                 `*` (letters, digits, '-', '_', '.', '*'; at most {MAX_CLUSTER_ID_LEN} \
                 characters), optionally after `!` to deny"
            ));
        }
        Ok(Self {
            deny,
            glob: glob.to_owned(),
        })
    }
}

impl fmt::Display for ClusterPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deny {
            f.write_str("!")?;
        }
        f.write_str(&self.glob)
    }
}

/// `*` matches any run of bytes; everything else matches itself. Linear in practice: the
/// classic two-pointer algorithm backtracks only to the last `*`.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The clusters a credential may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters(Vec<ClusterPattern>);

impl Clusters {
    /// Every cluster.
    pub fn all() -> Self {
        Self(vec![ClusterPattern {
            deny: false,
            glob: "*".to_owned(),
        }])
    }

    /// Parses patterns, refusing more than [`MAX_PATTERNS`] and any that is not a pattern.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "too many cluster patterns ({}); at most {MAX_PATTERNS}",
                patterns.len()
            ));
        }
        patterns
            .iter()
            .map(|p| p.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `cluster_id` is reachable: some allow pattern matches and no deny pattern does.
    pub fn allows(&self, cluster_id: &str) -> bool {
        let mut allowed = false;
        for pattern in &self.0 {
            if pattern.matches(cluster_id) {
                if pattern.deny {
                    return false;
                }
                allowed = true;
            }
        }
        allowed
    }

    /// Whether every cluster is reachable (a `*` allow and no deny).
    pub fn is_all(&self) -> bool {
        self.0.iter().all(|p| !p.deny) && self.0.iter().any(|p| p.glob == "*")
    }

    /// The patterns as written.
    pub fn patterns(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Clusters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns().join("|"))
    }
}

/// A scope with the clusters it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// What the credential may do.
    pub scope: Scope,
    /// Where.
    pub clusters: Clusters,
}

impl Grant {
    /// Whether the grant reaches `cluster_id`.
    pub fn allows(&self, cluster_id: &str) -> bool {
        self.clusters.allows(cluster_id)
    }
}

/// Everything a caller may reach: the union of its grants. On a cluster, the caller has the
/// highest scope of the grants that reach it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access(Vec<Grant>);

impl Access {
    /// Access from grants (none: the caller reaches nothing).
    pub fn new(grants: Vec<Grant>) -> Self {
        Self(grants)
    }

    /// The scope on `cluster_id`: the highest of the grants reaching it, if any does.
    pub fn scope_on(&self, cluster_id: &str) -> Option<Scope> {
        self.0
            .iter()
            .filter(|g| g.allows(cluster_id))
            .map(|g| g.scope)
            .max()
    }

    /// Whether some grant reaches `cluster_id`.
    pub fn may_reach(&self, cluster_id: &str) -> bool {
        self.scope_on(cluster_id).is_some()
    }

    /// Whether the caller is an admin of the whole broker: admin on every cluster. Only such a
    /// caller manages credentials and reads the audit trail; an admin of some clusters sees
    /// every caller's sessions there.
    pub fn is_broker_admin(&self) -> bool {
        self.0
            .iter()
            .any(|g| g.scope == Scope::Admin && g.clusters.is_all())
    }

    /// The grants.
    pub fn grants(&self) -> &[Grant] {
        &self.0
    }
}

impl fmt::Display for Access {
    /// `read on a|b; admin on prod-*`, or `nothing`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no cluster");
        }
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} on {}", g.scope, g.clusters)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters(p: &[&str]) -> Clusters {
        Clusters::parse(p).unwrap()
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"prod-*", b"prod-eu-1"));
        assert!(glob_match(b"prod-*", b"prod-"));
        assert!(!glob_match(b"prod-*", b"staging-1"));
        assert!(glob_match(b"*-eu-*", b"prod-eu-1"));
        assert!(!glob_match(b"*-eu-*", b"prod-us-1"));
        assert!(glob_match(b"a*b*c", b"aXbYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXbYbZ"));
        assert!(glob_match(b"exact", b"exact"));
        assert!(!glob_match(b"exact", b"exact2"));
        // Many stars on a long id stay cheap (no exponential backtracking).
        let pattern = "*a".repeat(60);
        assert!(!glob_match(pattern.as_bytes(), "a".repeat(59).as_bytes()));
    }

    #[test]
    fn deny_wins_over_allow() {
        let c = clusters(&["prod-*", "!prod-secret", "dev-1"]);
        assert!(c.allows("prod-eu"));
        assert!(!c.allows("prod-secret"));
        assert!(c.allows("dev-1"));
        assert!(!c.allows("dev-2"));
        assert!(!c.is_all());
        assert!(Clusters::all().is_all());
        assert!(clusters(&["*"]).allows("anything"));
        assert!(
            !clusters(&[]).allows("anything"),
            "no pattern reaches nothing"
        );
    }

    #[test]
    fn access_takes_the_highest_scope_of_the_grants_that_reach_a_cluster() {
        let grant = |scope, p: &[&str]| Grant {
            scope,
            clusters: clusters(p),
        };
        let access = Access::new(vec![
            grant(Scope::Admin, &["prod-*", "!prod-secret"]),
            grant(Scope::Read, &["*"]),
        ]);
        assert_eq!(access.scope_on("prod-eu"), Some(Scope::Admin));
        assert_eq!(
            access.scope_on("prod-secret"),
            Some(Scope::Read),
            "a deny holds within its grant"
        );
        assert_eq!(access.scope_on("dev-1"), Some(Scope::Read));
        assert!(!access.is_broker_admin());
        assert!(Access::new(vec![grant(Scope::Admin, &["*"])]).is_broker_admin());
        assert!(!Access::default().may_reach("x"));
        assert_eq!(
            access.to_string(),
            "admin on prod-*|!prod-secret; read on *"
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in ["", "!", "a b", "prod/1", &"x".repeat(200)] {
            let err = bad.parse::<ClusterPattern>().unwrap_err();
            assert!(err.contains("invalid cluster pattern"), "{bad}: {err}");
        }
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("c{i}")).collect();
        assert!(Clusters::parse(&many).unwrap_err().contains("too many"));
        assert_eq!(clusters(&["a", "!b*"]).to_string(), "a|!b*");
    }
}
