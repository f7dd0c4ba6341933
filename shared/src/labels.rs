//! Cluster labels, and kubectl's label selectors over them.
//!
//! An agent carries labels (`kubeline agent --label env=prod`) in Kubernetes' label syntax and
//! bounds: a key is an optional DNS-subdomain prefix (≤ 253 characters) and `/`, then a name of
//! ≤ 63 letters, digits, `-`, `_`, `.` that starts and ends with a letter or digit; a value is
//! empty or a name of the same form; at most [`MAX_CLUSTER_LABELS`] of them. The agent checks
//! them at start ([`Label`], [`collect`]) and the broker again on every hello ([`check_labels`]):
//! a hostile agent is bounded like any caller.
//!
//! The broker filters clusters with a [`Selector`] written as kubectl's `-l`: `env=prod`,
//! `env==prod`, `env!=prod`, `env in (prod,staging)`, `env notin (dev)`, `env`, `!env`, joined by
//! `,` (every requirement must hold); `>` and `<` on whole numbers, which apimachinery's parser
//! also knows, work too. The grammar, its edge cases (`in ()`, `env=` for the empty value) and
//! its error wording follow apimachinery's `labels.Parse`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::limits::{MAX_CLUSTER_LABELS, MAX_SELECTOR_BYTES};

/// A cluster's labels, by key.
pub type Labels = BTreeMap<String, String>;

/// Longest name part of a key, and longest value.
const MAX_NAME: usize = 63;
/// Longest prefix of a key (a DNS subdomain).
const MAX_PREFIX: usize = 253;

// === labels ===

/// Checks a label key as Kubernetes does (`IsQualifiedName`).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a label key must not be empty".to_owned());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!(
                "label key {key:?}: the prefix before '/' must not be empty"
            ));
        }
        if prefix.len() > MAX_PREFIX {
            return Err(format!(
                "label key {key:?}: the prefix before '/' must be at most {MAX_PREFIX} characters"
            ));
        }
        if !is_dns_subdomain(prefix) {
            return Err(format!(
                "label key {key:?}: the prefix {prefix:?} must be a DNS subdomain: lowercase \
                 letters, digits, '-' and '.', each part starting and ending with a letter or \
                 digit (e.g. example.com)"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!(
            "label key {key:?}: the name after the prefix must not be empty"
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "label key {key:?}: the name must be at most {MAX_NAME} characters"
        ));
    }
    if !is_name(name) {
        return Err(format!(
            "label key {key:?}: the name must consist of letters, digits, '-', '_' or '.', and \
             start and end with a letter or digit (e.g. env, app.kubernetes.io/name)"
        ));
    }
    Ok(())
}

/// Checks a label value as Kubernetes does (`IsValidLabelValue`): empty, or a name.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME {
        return Err(format!(
            "label value {value:?}: must be at most {MAX_NAME} characters"
        ));
    }
    if !value.is_empty() && !is_name(value) {
        return Err(format!(
            "label value {value:?}: must be empty or consist of letters, digits, '-', '_' or \
             '.', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a whole set of labels: at most [`MAX_CLUSTER_LABELS`], every key and value valid.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_CLUSTER_LABELS {
        return Err(format!(
            "{} labels; a cluster may carry at most {MAX_CLUSTER_LABELS}",
            labels.len()
        ));
    }
    for (key, value) in labels {
        check_key(key)?;
        check_value(value)?;
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Lowercase DNS-1123 subdomain: parts of `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined by `.`.
fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|part| {
        let b = part.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && alnum(&b[0])
            && alnum(&b[b.len() - 1])
            && b.iter().all(|c| alnum(c) || *c == b'-')
    })
}

/// One label as given on the command line: `KEY=VALUE` (the value may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!(
                "{s:?} is not a label: write KEY=VALUE, e.g. env=prod"
            ));
        };
        check_key(key)?;
        check_value(value)?;
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The labels given one by one, as a set: refuses a key given twice and more than
/// [`MAX_CLUSTER_LABELS`].
pub fn collect(labels: &[Label]) -> Result<Labels, String> {
    if labels.len() > MAX_CLUSTER_LABELS {
        return Err(format!(
            "{} labels given; at most {MAX_CLUSTER_LABELS}",
            labels.len()
        ));
    }
    let mut out = Labels::new();
    for label in labels {
        if out.insert(label.key.clone(), label.value.clone()).is_some() {
            return Err(format!(
                "label key {:?} is given twice; give each key once",
                label.key
            ));
        }
    }
    Ok(out)
}

// === selectors ===

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
    /// The bound of `>` and `<`.
    bound: i64,
}

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// Why a selector does not parse; the message says where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl Selector {
    /// Parses kubectl's label selector grammar. An empty (or blank) selector matches every
    /// set of labels.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        if selector.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError(format!(
                "the selector is {} bytes; kubeline's limit is {MAX_SELECTOR_BYTES}",
                selector.len()
            )));
        }
        Parser::new(selector).parse().map(Self)
    }

    /// Whether it selects nothing in particular (every set of labels matches).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        Self::parse(s)
    }
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > self.bound),
            Operator::LessThan => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < self.bound),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let values = || r.values.iter().cloned().collect::<Vec<_>>().join(",");
            match r.operator {
                Operator::Equals => write!(f, "{}={}", r.key, values())?,
                Operator::NotEquals => write!(f, "{}!={}", r.key, values())?,
                Operator::In => write!(f, "{} in ({})", r.key, values())?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, values())?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
                Operator::GreaterThan => write!(f, "{}>{}", r.key, r.bound)?,
                Operator::LessThan => write!(f, "{}<{}", r.key, r.bound)?,
            }
        }
        Ok(())
    }
}

// --- lexer ---

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Identifier,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

/// Whether `in`/`notin` are keywords (after a key) or plain values (everywhere else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// The selector as tokens with their text, as apimachinery's lexer cuts it.
fn lex(input: &str) -> Vec<(Token, &str)> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        let Some(c) = rest.chars().next() else {
            out.push((Token::End, ""));
            return out;
        };
        let (token, len) = if is_special(c) {
            // The longest operator the next characters spell: `!=` and `==` are one token.
            match (c, rest.as_bytes().get(1)) {
                ('!', Some(b'=')) => (Token::NotEquals, 2),
                ('=', Some(b'=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::DoesNotExist, 1),
                ('=', _) => (Token::Equals, 1),
                ('(', _) => (Token::OpenPar, 1),
                (')', _) => (Token::ClosedPar, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            }
        } else {
            let len = rest
                .find(|c| is_whitespace(c) || is_special(c))
                .unwrap_or(rest.len());
            let token = match &rest[..len] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            (token, len)
        };
        out.push((token, &rest[..len]));
        rest = &rest[len..];
    }
}

// --- parser ---

struct Parser<'a> {
    tokens: Vec<(Token, &'a str)>,
    position: usize,
}

fn error(message: String) -> SelectorError {
    SelectorError(message)
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            tokens: lex(input),
            position: 0,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, text) = self.tokens[self.position.min(self.tokens.len() - 1)];
        (in_context(token, context), text)
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let next = self.lookahead(context);
        if self.position < self.tokens.len() - 1 {
            self.position += 1;
        }
        next
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (token, text) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.requirement()?);
                    let (token, text) = self.consume(Context::Values);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, text) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(error(format!(
                                    "found '{text}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(error(format!(
                                "found '{text}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(error(format!(
                        "found '{text}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, operator) = self.key_and_inferred_operator()?;
        if let Some(operator) = operator {
            return new_requirement(key, operator, BTreeSet::new());
        }
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    /// The key, and `Exists` or `DoesNotExist` when no operator follows it.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), SelectorError> {
        let (mut token, mut text) = self.consume(Context::Values);
        let mut operator = None;
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, text) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(error(format!("found '{text}', expected: identifier")));
        }
        check_key(text).map_err(error)?;
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::End | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((text.to_owned(), operator))
    }

    fn operator(&mut self) -> Result<Operator, SelectorError> {
        let (token, text) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => {
                return Err(error(format!(
                    "found '{text}', expected: in, notin, =, ==, !=, >, <"
                )));
            }
        })
    }

    /// `( value, … )` after `in`/`notin`.
    fn values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (token, text) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(error(format!("found '{text}', expected: '('")));
        }
        let (token, text) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let set = self.identifiers()?;
                let (token, text) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(error(format!("found '{text}', expected: ')'")));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                // `()` is the empty value, as apimachinery reads it.
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(error(format!(
                "found '{text}', expected: ',', ')' or identifier"
            ))),
        }
    }

    /// The values inside `( … )`; empty ones (`(a,)`, `(,a)`, `(a,,b)`) are the empty value.
    fn identifiers(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut set = BTreeSet::new();
        loop {
            let (token, text) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    set.insert(text.to_owned());
                    let (next, text) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => {
                            return Err(error(format!("found '{text}', expected: ',' or ')'")));
                        }
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new());
                    }
                }
                _ => {
                    return Err(error(format!(
                        "found '{text}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    /// The one value after `=`, `==`, `!=`, `>`, `<`; none at all is the empty value.
    fn exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, text) = self.consume(Context::Values);
        if token == Token::Identifier {
            return Ok(BTreeSet::from([text.to_owned()]));
        }
        Err(error(format!("found '{text}', expected: identifier")))
    }
}

/// In a value's place, `in` and `notin` are plain words.
fn in_context(token: Token, context: Context) -> Token {
    match (token, context) {
        (Token::In | Token::NotIn, Context::Values) => Token::Identifier,
        _ => token,
    }
}

fn new_requirement(
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
) -> Result<Requirement, SelectorError> {
    let mut bound = 0;
    match operator {
        Operator::GreaterThan | Operator::LessThan => {
            let value = values.first().map(String::as_str).unwrap_or_default();
            bound = value.parse::<i64>().map_err(|_| {
                error(format!(
                    "for '>' and '<', the value must be a whole number, not {value:?}"
                ))
            })?;
        }
        _ => {
            for value in &values {
                check_value(value).map_err(error)?;
            }
        }
    }
    Ok(Requirement {
        key,
        operator,
        values,
        bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_and_values_follow_kubernetes() {
        for ok in [
            "env",
            "a",
            "app.kubernetes.io/name",
            "example.com/x_y-z.1",
            "A9",
            &"k".repeat(63),
            &format!("{}/n", "p".repeat(253)),
        ] {
            assert_eq!(check_key(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("", "must not be empty"),
            ("/x", "prefix before '/' must not be empty"),
            ("x/", "name after the prefix must not be empty"),
            ("Example.com/x", "DNS subdomain"),
            ("a..b/x", "DNS subdomain"),
            ("-env", "start and end with a letter or digit"),
            ("env-", "start and end"),
            ("a/b/c", "consist of letters"),
            ("en v", "consist of letters"),
            ("é", "consist of letters"),
            (&"k".repeat(64), "at most 63"),
            (&format!("{}/n", "p".repeat(254)), "at most 253"),
        ] {
            let e = check_key(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        for ok in ["", "prod", "eu-west-1", "1.2.3", &"v".repeat(63)] {
            assert_eq!(check_value(ok), Ok(()), "{ok}");
        }
        for bad in ["-x", "x_", "a b", "a/b", &"v".repeat(64)] {
            assert!(check_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_on_the_command_line() {
        let l: Label = "env=prod".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("env", "prod"));
        let l: Label = " tier= ".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("tier", ""));
        assert!(
            "env"
                .parse::<Label>()
                .unwrap_err()
                .contains("write KEY=VALUE")
        );
        assert!("env=a=b".parse::<Label>().is_err());
        assert!("=prod".parse::<Label>().is_err());
        let many: Vec<Label> = (0..33)
            .map(|i| format!("k{i}=v").parse().unwrap())
            .collect();
        assert!(collect(&many).unwrap_err().contains("at most 32"));
        assert_eq!(collect(&many[..32]).unwrap().len(), 32);
        let twice = ["env=a".parse().unwrap(), "env=b".parse().unwrap()];
        assert!(collect(&twice).unwrap_err().contains("given twice"));
        let mut set = labels(&[("env", "prod")]);
        assert_eq!(check_labels(&set), Ok(()));
        set.insert("bad key".into(), "x".into());
        assert!(check_labels(&set).is_err());
        let set: Labels = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels(&set).unwrap_err().contains("at most 32"));
    }

    #[test]
    fn selectors_match_as_kubectl_does() {
        let prod_eu = labels(&[("env", "prod"), ("region", "eu"), ("tier", "3")]);
        let dev_us = labels(&[("env", "dev"), ("region", "us")]);
        let bare = Labels::new();
        let cases: &[(&str, [bool; 3])] = &[
            ("", [true, true, true]),
            ("env=prod", [true, false, false]),
            ("env==prod", [true, false, false]),
            ("env!=prod", [false, true, true]),
            ("env=prod,region!=us", [true, false, false]),
            ("env in (prod,dev)", [true, true, false]),
            ("env notin (prod)", [false, true, true]),
            ("env", [true, true, false]),
            ("!env", [false, false, true]),
            ("tier", [true, false, false]),
            ("!tier,env", [false, true, false]),
            ("tier>2", [true, false, false]),
            ("tier<3", [false, false, false]),
            ("region=", [false, false, false]),
            ("  env = prod ,  region in ( eu ) ", [true, false, false]),
            // `in` and `notin` are values where a value goes.
            ("env in (in,notin)", [false, false, false]),
        ];
        for (selector, expected) in cases {
            let s = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            let got = [s.matches(&prod_eu), s.matches(&dev_us), s.matches(&bare)];
            assert_eq!(&got, expected, "{selector:?} parsed as {s}");
        }
        assert!(Selector::parse(" ").unwrap().is_empty());
        let empty_value = labels(&[("env", "")]);
        for s in [
            "env=",
            "env in ()",
            "env in (,)",
            "env in (a,)",
            "env in (,a)",
        ] {
            assert!(Selector::parse(s).unwrap().matches(&empty_value), "{s}");
        }
    }

    #[test]
    fn bad_selectors_say_what_was_expected() {
        for (bad, says) in [
            ("env=prod,", "expected: identifier after ','"),
            (
                ",env",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("env=prod)", "expected: ',' or 'end of string'"),
            ("env prod", "expected: in, notin, =, ==, !=, >, <"),
            ("env in prod", "found 'prod', expected: '('"),
            ("env in (prod", "expected: ',' or ')'"),
            ("env in (a b)", "expected: ',' or ')'"),
            ("env notin (=)", "expected: ',', ')' or identifier"),
            ("env==(", "found '(', expected: identifier"),
            ("!env=prod", "expected: ',' or 'end of string'"),
            ("!", "found '', expected: identifier"),
            ("bad key=x", "expected: in, notin"),
            ("-env=x", "start and end with a letter or digit"),
            ("env=-x", "label value"),
            ("env in (ok,-x)", "label value"),
            ("tier>high", "whole number"),
            ("tier>", "whole number"),
        ] {
            let e = Selector::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let long = format!("env in ({})", "a,".repeat(3000));
        assert!(
            Selector::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("limit is 4096")
        );
    }

    #[test]
    fn selectors_print_canonically() {
        let s = Selector::parse("env==prod, region notin (us,ap),!x,tier>1").unwrap();
        assert_eq!(s.to_string(), "env=prod,region notin (ap,us),!x,tier>1");
    }
}
