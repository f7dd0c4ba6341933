//! Grant bindings: which scope and clusters a verified token gets from its claims.
//!
//! A binding is configured as `MATCH=SCOPE@CLUSTERS` (`--jwt-grant`), where MATCH is
//! `group:NAME`, `scope:NAME` or `sub:NAME`, SCOPE is `read` or `admin`, and CLUSTERS is a
//! `|`-separated list of cluster patterns (ids, globs such as `prod-*`, `!` before one to deny;
//! see [`crate::auth::grant`]). Bindings only add: a token gets what every binding it matches
//! grants, each scope on its own clusters, and nothing when none matches.

use std::fmt;
use std::str::FromStr;

use crate::auth::{Access, Clusters, Grant, Scope};

/// What a binding matches in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// A value of the groups claim, compared exactly.
    Group(String),
    /// One of the token's scopes (the scopes claim, or `scp`), compared exactly.
    Scope(String),
    /// The token's subject (`sub`), compared exactly.
    Subject(String),
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(name) => write!(f, "group:{name}"),
            Self::Scope(name) => write!(f, "scope:{name}"),
            Self::Subject(name) => write!(f, "sub:{name}"),
        }
    }
}

/// One `--jwt-grant MATCH=SCOPE@CLUSTERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantBinding {
    /// What the token must carry.
    pub matcher: Matcher,
    /// What it then gets.
    pub grant: Grant,
}

impl FromStr for GrantBinding {
    type Err = String;

    /// Parses `MATCH=SCOPE@CLUSTERS`. The split is at the **last** `=`, so a group name may
    /// contain `=` (LDAP names such as `cn=sre,ou=people` do); SCOPE and CLUSTERS never do.
    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "expected MATCH=SCOPE@CLUSTERS, e.g. group:sre=admin@prod-*|dev-1";
        let (matcher, grant) = s.rsplit_once('=').ok_or_else(|| FORM.to_owned())?;
        let (kind, name) = matcher.split_once(':').ok_or_else(|| {
            format!("`{matcher}`: MATCH must be group:NAME, scope:NAME or sub:NAME")
        })?;
        if name.is_empty() {
            return Err(format!("`{matcher}`: the name after `{kind}:` is empty"));
        }
        let matcher = match kind {
            "group" => Matcher::Group(name.to_owned()),
            "scope" => Matcher::Scope(name.to_owned()),
            "sub" => Matcher::Subject(name.to_owned()),
            other => {
                return Err(format!(
                    "`{other}:`: MATCH must be group:NAME, scope:NAME or sub:NAME"
                ));
            }
        };
        let (scope, clusters) = grant
            .split_once('@')
            .ok_or_else(|| format!("`{grant}`: {FORM}"))?;
        let scope: Scope = scope.parse()?;
        let patterns: Vec<&str> = clusters.split('|').collect();
        let clusters = Clusters::parse(&patterns)
            .map_err(|e| format!("{e} (clusters are separated by '|')"))?;
        Ok(Self {
            matcher,
            grant: Grant { scope, clusters },
        })
    }
}

impl fmt::Display for GrantBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}@{}",
            self.matcher, self.grant.scope, self.grant.clusters
        )
    }
}

/// What the bindings a token's claims match grant it: each matched binding's grant, in
/// configuration order (none matched: no access at all).
pub fn resolve(
    bindings: &[GrantBinding],
    subject: &str,
    groups: &[String],
    scopes: &[String],
) -> Access {
    let grants = bindings
        .iter()
        .filter(|binding| match &binding.matcher {
            Matcher::Group(name) => groups.iter().any(|g| g == name),
            Matcher::Scope(name) => scopes.iter().any(|s| s == name),
            Matcher::Subject(name) => subject == name,
        })
        .map(|binding| binding.grant.clone())
        .collect();
    Access::new(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(s: &str) -> GrantBinding {
        s.parse().unwrap()
    }

    #[test]
    fn bindings_parse_and_print_back() {
        let b = binding("group:sre=admin@*");
        assert_eq!(b.matcher, Matcher::Group("sre".into()));
        assert_eq!(b.grant.scope, Scope::Admin);
        assert_eq!(b.grant.clusters.patterns(), ["*"]);
        let b = binding("scope:kubeline.read=read@staging-*|dev-1");
        assert_eq!(b.matcher, Matcher::Scope("kubeline.read".into()));
        assert_eq!(b.grant.clusters.patterns(), ["staging-*", "dev-1"]);
        assert_eq!(b.to_string(), "scope:kubeline.read=read@staging-*|dev-1");
        // A subject may hold `@`, a group `=`: the split is at the last `=`.
        let b = binding("sub:robot@ci.example=read@ci");
        assert_eq!(b.matcher, Matcher::Subject("robot@ci.example".into()));
        let b = binding("group:cn=sre,ou=people=admin@prod");
        assert_eq!(b.matcher, Matcher::Group("cn=sre,ou=people".into()));
    }

    #[test]
    fn bad_bindings_say_what_is_wrong() {
        for (input, needle) in [
            ("", "MATCH=SCOPE@CLUSTERS"),
            ("group:sre", "MATCH=SCOPE@CLUSTERS"),
            ("sre=admin@*", "group:NAME"),
            ("role:sre=admin@*", "MATCH must be"),
            ("group:=admin@*", "empty"),
            ("group:sre=admin", "MATCH=SCOPE@CLUSTERS"),
            ("group:sre=root@*", "unknown scope"),
            ("group:sre=read@", "invalid cluster pattern"),
            ("group:sre=read@a||b", "invalid cluster pattern"),
            ("group:sre=read@a b", "invalid cluster pattern"),
            ("group:sre=read@prod/1", "invalid cluster pattern"),
        ] {
            let err = input.parse::<GrantBinding>().unwrap_err();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn claims_resolve_to_each_matched_grant() {
        let bindings = [
            binding("group:sre=admin@prod-*"),
            binding("scope:kubeline.read=read@staging-*|dev-1"),
            binding("sub:robot=read@ci|dev-1|!dev-secret"),
        ];
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

        let a = resolve(&bindings, "alice", &s(&["sre"]), &[]);
        assert_eq!(a.scope_on("prod-1"), Some(Scope::Admin));
        assert_eq!(a.scope_on("dev-1"), None);

        let a = resolve(&bindings, "alice", &[], &s(&["openid", "kubeline.read"]));
        assert_eq!(a.scope_on("staging-x"), Some(Scope::Read));
        assert_eq!(a.scope_on("prod-1"), None);

        let a = resolve(&bindings, "robot", &[], &s(&["kubeline.read"]));
        assert_eq!(a.grants().len(), 2);
        assert!(a.may_reach("ci") && a.may_reach("dev-1"));

        let a = resolve(&bindings, "alice", &s(&["sre"]), &s(&["kubeline.read"]));
        assert_eq!(a.scope_on("prod-eu"), Some(Scope::Admin));
        assert_eq!(a.scope_on("dev-1"), Some(Scope::Read));

        let a = resolve(&bindings, "mallory", &s(&["SRE"]), &s(&["kubeline"]));
        assert_eq!(a, Access::default());
    }
}
