//! Small SQL text helpers: identifier quoting and splitting a seed script into
//! statements.

/// Quotes an SQL identifier (`"name"`, inner quotes doubled). Every identifier
/// this crate puts into SQL text goes through here, so a table or tenant name
/// can never end the identifier early.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One statement of a script, and whether it uses the tenant parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) binds_tenant: bool,
}

/// Splits a script on `;` outside quotes and comments, dropping empty and
/// comment-only statements. `param` is the tenant placeholder (`?1` on SQLite,
/// `$1` on PostgreSQL); a statement binds the tenant when it appears outside
/// quotes and comments, because drivers reject a bound value no statement uses.
pub(crate) fn split_statements(script: &str, param: &str) -> Vec<Statement> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let mut has_code = false;
    let mut binds = false;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                has_code = true;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        // A doubled quote is an escaped quote, not the end.
                        if bytes.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                push(&mut out, &script[start..i], has_code, binds);
                (start, has_code, binds) = (i + 1, false, false);
                i += 1;
            }
            c => {
                if !c.is_ascii_whitespace() {
                    has_code = true;
                }
                if bytes[i..].starts_with(param.as_bytes())
                    && !next_is_digit(bytes, i + param.len())
                {
                    binds = true;
                    i += param.len();
                } else {
                    i += 1;
                }
            }
        }
    }
    push(
        &mut out,
        &script[start.min(script.len())..],
        has_code,
        binds,
    );
    out
}

fn next_is_digit(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_some_and(u8::is_ascii_digit)
}

fn push(out: &mut Vec<Statement>, sql: &str, has_code: bool, binds_tenant: bool) {
    if has_code {
        out.push(Statement {
            sql: sql.trim().to_owned(),
            binds_tenant,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("tenant_acme"), "\"tenant_acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        let script = "-- header; not a statement\n\
                      INSERT INTO t (a) VALUES ('x;y', ?1);\n\
                      /* block; comment */ UPDATE t SET a = 'it''s;' ;\n\
                      INSERT INTO u VALUES (?10);\n  -- trailing comment\n";
        let got = split_statements(script, "?1");
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].sql.ends_with("VALUES ('x;y', ?1)"));
        assert!(got[0].binds_tenant);
        assert!(!got[1].binds_tenant);
        assert!(got[1].sql.contains("'it''s;'"));
        assert!(!got[2].binds_tenant, "?10 is not ?1");
    }

    #[test]
    fn multibyte_text_is_kept_whole() {
        let got = split_statements("INSERT INTO t VALUES ('café ✓', ?1);", "?1");
        assert_eq!(got[0].sql, "INSERT INTO t VALUES ('café ✓', ?1)");
        let got = split_statements(
            "SELECT 1 -- é
; SELECT ✓",
            "?1",
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn placeholder_inside_a_string_is_not_a_bind() {
        let got = split_statements("SELECT '$1'; SELECT $1", "$1");
        assert_eq!(
            got.iter().map(|s| s.binds_tenant).collect::<Vec<_>>(),
            [false, true]
        );
    }
}
