//! Small SQL text helpers: identifier quoting and splitting a seed script into
//! statements.

/// Quotes an SQL identifier (`"name"`, inner quotes doubled). Every identifier
/// this crate puts into SQL text goes through here, so a table or tenant name
/// can never end the identifier early.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Lowercase hex of `bytes`: checksums, staging names, `bytea` literals.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Quotes a text literal for SQL sent as text (`E'...'`, with `'` and `\`
/// escaped): the `E` form reads the same whatever `standard_conforming_strings`
/// is set to.
#[cfg(feature = "postgres")]
pub(crate) fn quote_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// One statement of a script, and whether it uses the tenant parameter.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) binds_tenant: bool,
}

/// What [`scan`] reports, by byte offset into the script (SQLite's splitting
/// reads the ends, PostgreSQL's inlining the placeholders).
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
enum Mark {
    /// The tenant placeholder, outside quotes and comments.
    Param(usize),
    /// A `;` ending a statement.
    End(usize),
    /// A character of code (not whitespace, not a comment).
    Code,
}

/// Walks a script as SQL reads it, reporting placeholders, statement ends
/// and code outside quotes and comments: the one tokenizer behind splitting
/// a seed into statements and inlining its tenant.
fn scan(script: &str, param: &str, mut mark: impl FnMut(Mark)) {
    let bytes = script.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                mark(Mark::Code);
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
                mark(Mark::End(i));
                i += 1;
            }
            b'$' if dollar_tag(bytes, i).is_some() => {
                // A dollar-quoted string (`$$...$$`, `$tag$...$tag$`, as in
                // function bodies): nothing inside it is a placeholder or an end.
                mark(Mark::Code);
                let tag = dollar_tag(bytes, i).unwrap_or(b"$$");
                let body = i + tag.len();
                i = bytes[body..]
                    .windows(tag.len())
                    .position(|w| w == tag)
                    .map_or(bytes.len(), |at| body + at + tag.len());
            }
            c => {
                if !c.is_ascii_whitespace() {
                    mark(Mark::Code);
                }
                if bytes[i..].starts_with(param.as_bytes())
                    && !next_is_digit(bytes, i + param.len())
                    && !(i > 0 && is_word(bytes[i - 1]))
                {
                    mark(Mark::Param(i));
                    i += param.len();
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// Splits a script on `;` outside quotes and comments, dropping empty and
/// comment-only statements. `param` is the tenant placeholder (`?1` on SQLite,
/// `$1` on PostgreSQL); a statement binds the tenant when it appears outside
/// quotes and comments, because drivers reject a bound value no statement uses.
#[cfg(feature = "sqlite")]
pub(crate) fn split_statements(script: &str, param: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut start = 0;
    let (mut has_code, mut binds) = (false, false);
    scan(script, param, |mark| match mark {
        Mark::Code => has_code = true,
        Mark::Param(_) => binds = true,
        Mark::End(at) => {
            push(&mut out, &script[start..at], has_code, binds);
            (start, has_code, binds) = (at + 1, false, false);
        }
    });
    push(
        &mut out,
        &script[start.min(script.len())..],
        has_code,
        binds,
    );
    out
}

/// The script with every tenant placeholder outside quotes and comments
/// replaced by `literal` (from [`quote_literal`]), so that it can go to the
/// server as one simple-protocol query, which takes no parameters.
#[cfg(feature = "postgres")]
pub(crate) fn inline_param(script: &str, param: &str, literal: &str) -> String {
    let mut out = String::with_capacity(script.len() + literal.len());
    let mut copied = 0;
    scan(script, param, |mark| {
        if let Mark::Param(at) = mark {
            out.push_str(&script[copied..at]);
            out.push_str(literal);
            copied = at + param.len();
        }
    });
    out.push_str(&script[copied..]);
    out
}

/// The opening tag of a dollar-quoted string at `at` (`$$` or `$tag$`, the
/// tag not starting with a digit: `$1` is a placeholder).
fn dollar_tag(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let first = *bytes.get(at + 1)?;
    if first.is_ascii_digit() {
        return None;
    }
    let end = (at + 1..bytes.len()).find(|&j| !is_word(bytes[j]) || bytes[j] == b'$')?;
    (bytes[end] == b'$').then(|| &bytes[at..=end])
}

/// A byte of an identifier (PostgreSQL allows `$` after the first
/// character): a placeholder right after one is part of a name.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

fn next_is_digit(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_some_and(u8::is_ascii_digit)
}

#[cfg(feature = "sqlite")]
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
    fn hex_is_lowercase_and_zero_padded() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00ab0f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("tenant_acme"), "\"tenant_acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    #[cfg(feature = "sqlite")]
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
    #[cfg(feature = "sqlite")]
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
    #[cfg(feature = "postgres")]
    fn dollar_quoted_bodies_and_names_keep_their_placeholders() {
        let script = "CREATE FUNCTION f(x text) RETURNS text AS $$ BEGIN RETURN $1; END $$ \
                      LANGUAGE plpgsql; SELECT $fn$ $1; $fn$, col$1, $1";
        assert_eq!(
            inline_param(script, "$1", "E'acme'"),
            "CREATE FUNCTION f(x text) RETURNS text AS $$ BEGIN RETURN $1; END $$ \
             LANGUAGE plpgsql; SELECT $fn$ $1; $fn$, col$1, E'acme'"
        );
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn a_dollar_quoted_body_is_one_statement() {
        let got = split_statements("CREATE FUNCTION f() AS $$ a; b $$; SELECT ?1", "?1");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].sql.ends_with("$$ a; b $$"));
        assert!(!got[0].binds_tenant && got[1].binds_tenant);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn quotes_literals() {
        assert_eq!(quote_literal("acme"), "E'acme'");
        assert_eq!(quote_literal("it's \\x"), "E'it''s \\\\x'");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn inlines_the_placeholder_outside_quotes_and_comments() {
        let script = "INSERT INTO u VALUES ($1, '$1', $10); -- $1\nSELECT $1";
        assert_eq!(
            inline_param(script, "$1", "E'acme'"),
            "INSERT INTO u VALUES (E'acme', '$1', $10); -- $1\nSELECT E'acme'"
        );
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn placeholder_inside_a_string_is_not_a_bind() {
        let got = split_statements("SELECT '$1'; SELECT $1", "$1");
        assert_eq!(
            got.iter().map(|s| s.binds_tenant).collect::<Vec<_>>(),
            [false, true]
        );
    }
}
