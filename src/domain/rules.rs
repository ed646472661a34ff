//! Twilio's track rules: recording rules (a room's) and subscribe rules (a participant's). Both
//! are a JSON array of `{type, all | publisher | track | kind}` objects; subscribe rules may also
//! carry a `priority`. Parsed once into a normal form (unused keys left out), stored as JSON.

use crate::twilio::error::code;
use crate::twilio::ApiError;
use serde_json::{Map, Value};

/// Twilio's most rules per request.
pub const MAX_RULES: usize = 20;

/// What one kind of rules accepts, and the error that refuses it.
pub struct Grammar {
    pub code: u32,
    pub message: &'static str,
    pub kinds: &'static [&'static str],
    /// Subscribe rules take a `priority` (not a filter).
    pub priority: bool,
}

pub const RECORDING: Grammar = Grammar {
    code: code::RECORDING_RULES_INVALID,
    message: "Invalid Recording Rule(s)",
    kinds: &["audio", "video"],
    priority: false,
};

pub const SUBSCRIBE: Grammar = Grammar {
    code: code::SUBSCRIBE_RULES_INVALID,
    message: "Invalid Subscribe Rule(s)",
    kinds: &["audio", "video", "data"],
    priority: true,
};

const PRIORITIES: [&str; 3] = ["low", "standard", "high"];

/// Parses `raw` (a JSON array of rules, or `{"rules": [...]}`) into its normal form: each rule
/// an object with `type` and the filters it uses. Refused with `grammar`'s code: not JSON, no
/// rules or more than 20, a rule without a `type` or without a filter, `all` other than `true` or
/// not alone, an unknown key or kind, a duplicate rule.
pub fn parse(raw: &str, grammar: &Grammar) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad_request(grammar.code, grammar.message);
    let parsed: Value = serde_json::from_str(raw).map_err(|_| invalid())?;
    let rules = match parsed {
        Value::Array(rules) => rules,
        Value::Object(mut o) if o.len() == 1 => match o.remove("rules") {
            Some(Value::Array(rules)) => rules,
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(invalid());
    }
    let mut out: Vec<Value> = Vec::with_capacity(rules.len());
    for rule in rules {
        let Value::Object(rule) = rule else {
            return Err(invalid());
        };
        let mut norm = Map::new();
        match rule.get("type").and_then(Value::as_str) {
            Some(t @ ("include" | "exclude")) => norm.insert("type".into(), t.into()),
            _ => return Err(invalid()),
        };
        let mut filters = 0;
        for (key, value) in &rule {
            match (key.as_str(), value) {
                ("type", _) | (_, Value::Null) => continue,
                ("priority", Value::String(p))
                    if grammar.priority && PRIORITIES.contains(&p.as_str()) =>
                {
                    norm.insert(key.clone(), value.clone());
                    continue;
                }
                ("all", Value::Bool(true)) => {}
                // What a rule names is an identity, a track name or a SID: 1..128 characters
                // without control characters (NUL cannot be stored in jsonb).
                ("publisher" | "track", Value::String(s)) if is_name(s) => {}
                ("kind", Value::String(k)) if grammar.kinds.contains(&k.as_str()) => {}
                _ => return Err(invalid()),
            }
            filters += 1;
            norm.insert(key.clone(), value.clone());
        }
        // A rule filters on something, and `all` stands alone.
        if filters == 0 || (norm.contains_key("all") && filters > 1) {
            return Err(invalid());
        }
        let norm = Value::Object(norm);
        if out.contains(&norm) {
            return Err(invalid());
        }
        out.push(norm);
    }
    Ok(Value::Array(out))
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control)
}

/// Include everything: Twilio's default subscribe rules, and a room's recording rules when it
/// records participants on connect.
pub fn include_all() -> Value {
    serde_json::json!([{ "type": "include", "all": true }])
}

/// Subscribe rules as Twilio shows them: every key present, unused ones `null`.
pub fn with_every_key(rules: &Value) -> Value {
    let keys = ["type", "all", "publisher", "track", "kind", "priority"];
    Value::Array(
        rules
            .as_array()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| {
                        Value::Object(
                            keys.iter()
                                .map(|k| (k.to_string(), r.get(*k).cloned().unwrap_or(Value::Null)))
                                .collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_rules_take_data_and_priority_recording_rules_do_not() {
        let rule = r#"[{"type":"include","kind":"data","priority":"high"}]"#;
        assert!(parse(rule, &SUBSCRIBE).is_ok());
        assert!(parse(rule, &RECORDING).is_err());
        assert!(parse(r#"[{"type":"include","priority":"high"}]"#, &SUBSCRIBE).is_err());
        assert!(parse(
            r#"[{"type":"include","all":true,"priority":"urgent"}]"#,
            &SUBSCRIBE
        )
        .is_err());
        let many: Vec<String> = (0..21)
            .map(|i| format!(r#"{{"type":"include","track":"t{i}"}}"#))
            .collect();
        assert!(parse(&format!("[{}]", many[..20].join(",")), &SUBSCRIBE).is_ok());
        assert!(parse(&format!("[{}]", many.join(",")), &SUBSCRIBE).is_err());
        for bad_name in [
            r#""a\u0000b""#.to_string(),
            format!("\"{}\"", "x".repeat(129)),
        ] {
            let rule = format!(r#"[{{"type":"include","publisher":{bad_name}}}]"#);
            assert!(parse(&rule, &SUBSCRIBE).is_err(), "{rule}");
            assert!(parse(&rule, &RECORDING).is_err(), "{rule}");
        }
    }

    #[test]
    fn every_key_is_shown() {
        let shown = with_every_key(&include_all());
        assert_eq!(
            shown,
            serde_json::json!([{"type": "include", "all": true, "publisher": null,
                                "track": null, "kind": null, "priority": null}])
        );
    }
}
