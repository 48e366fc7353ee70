//! Where a tenant's data lives: connection templates filled for one tenant;
//! the one rule that keeps secrets out of logs, JSON and the catalog; and the
//! one that keeps the server's directories out of what a tenant's owner reads.

use std::ops::Range;

use crate::model::{Region, ShardId, TenantId};

/// Fills a shard's connection template for one tenant: `{tenant}`, `{shard}`
/// and `{region}` replaced. The ids are validated slugs, so the result cannot
/// escape the template's directory or inject URL syntax.
///
/// ```
/// let path = provisioning_core::model::fill_template(
///     "databases/{region}/{shard}/{tenant}.sqlite",
///     &"acme".parse()?, &"eu-1".parse()?, &"eu-west".parse()?,
/// );
/// assert_eq!(path, "databases/eu-west/eu-1/acme.sqlite");
/// # Ok::<(), provisioning_core::Error>(())
/// ```
pub fn fill_template(
    template: &str,
    tenant: &TenantId,
    shard: &ShardId,
    region: &Region,
) -> String {
    template
        .replace("{tenant}", tenant.as_str())
        .replace("{shard}", shard.as_str())
        .replace("{region}", region.as_str())
}

/// `text` with every secret replaced by `***`: the password of a URL's user
/// info (`postgres://app:***@db/main`) and the value of any `password=`,
/// `pwd=` or `sslpassword=` key (URL query, libpq or ADO.NET style strings).
///
/// The one rule the workspace uses wherever a connection is shown: `Debug`,
/// `Display`, errors, logs, JSON and the placement recorded in the catalog.
/// Text without secrets comes back unchanged.
///
/// ```
/// use provisioning_core::model::redact_secrets;
///
/// assert_eq!(redact_secrets("postgres://app:s3cret@db1:5432/t"), "postgres://app:***@db1:5432/t");
/// assert_eq!(redact_secrets("host=db1 password=s3cret dbname=t"), "host=db1 password=*** dbname=t");
/// assert_eq!(redact_secrets("/data/eu-west/acme.sqlite"), "/data/eu-west/acme.sqlite");
/// ```
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in secret_spans(text) {
        out.push_str(&text[at..span.start]);
        out.push_str(REDACTED);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `text` with the directories of every absolute file path replaced by `…`:
/// `opening /srv/data/databases/eu-west/acme.sqlite: unable to open` becomes
/// `opening …/acme.sqlite: unable to open`.
///
/// Errors of file-backed databases and folders name the files they failed on,
/// which is right for a log and wrong for what a tenant's owner reads: the
/// text the journal, receipts, tenant records and events keep of a failure
/// goes through this (the full text goes to the log). A path starts at a `/`
/// (or `C:\`) after whitespace, a quote, a bracket, `=` or `,`, or right after
/// `://` of a URL with no host (`sqlite:///srv/t.db`); only one with a
/// directory part is changed. URLs with a host (`postgres://db1/main`) and
/// relative paths are left alone.
///
/// ```
/// use provisioning_core::model::redact_paths;
///
/// assert_eq!(
///     redact_paths("opening \"/srv/data/eu-west/acme.sqlite\": read-only file system"),
///     "opening \"…/acme.sqlite\": read-only file system",
/// );
/// assert_eq!(redact_paths("mkdir /var/lib/app/tenants/acme/ failed"), "mkdir …/acme/ failed");
/// assert_eq!(redact_paths("postgres://db1:5432/main and/or /tmp"), "postgres://db1:5432/main and/or /tmp");
/// ```
pub fn redact_paths(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(end) = path_at(text, i) else {
            i += 1;
            continue;
        };
        let path = &text[i..end];
        let trimmed = path.trim_end_matches(['/', '\\']);
        // The last separator after the start (a UNC path's `\\` is not one).
        let sep = trimmed
            .rfind(['/', '\\'])
            .filter(|&sep| sep > 1 || (sep == 1 && bytes[i] != b'\\'));
        if let Some(sep) = sep {
            out.push_str(&text[copied..i]);
            out.push_str(PATH_ELIDED);
            out.push_str(&path[sep..]);
            copied = end;
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// What the directories of a path are replaced with.
const PATH_ELIDED: &str = "…";

/// The end of the absolute path that starts at byte `i` of `text`, if one does.
fn path_at(text: &str, i: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let boundary = match i.checked_sub(1).map(|b| bytes[b]) {
        None => true,
        Some(b) => {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b'"' | b'\'' | b'`' | b'(' | b'[' | b'<' | b'=' | b',' | b':'
                )
                || bytes[..i].ends_with(b"://")
        }
    };
    let rest = &bytes[i..];
    let unix = rest.first() == Some(&b'/')
        && rest
            .get(1)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'/');
    // `C:\dir`, `C:/dir`, and `\\server\share` (UNC).
    let drive = rest.len() > 3
        && rest[0].is_ascii_alphabetic()
        && rest[1] == b':'
        && matches!(rest[2], b'\\' | b'/')
        && !rest[3].is_ascii_whitespace();
    let unc = rest.len() > 2
        && rest[0] == b'\\'
        && rest[1] == b'\\'
        && !rest[2].is_ascii_whitespace()
        && rest[2] != b'\\';
    (boundary && (unix || drive || unc)).then(|| path_end(text, i))
}

/// Where a path that starts at `start` ends: at whitespace, a quote, a closing
/// bracket, `,`, `;`, `?`, a `:` that ends a clause (`: ` or the text's end),
/// or a full stop that ends the text or a sentence.
fn path_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = start + 1;
    while end < bytes.len() {
        let b = bytes[end];
        let next = bytes.get(end + 1);
        let stop = b.is_ascii_whitespace()
            || matches!(
                b,
                b'"' | b'\'' | b'`' | b')' | b']' | b'>' | b',' | b';' | b'?'
            )
            || (matches!(b, b':' | b'.') && next.is_none_or(|n| n.is_ascii_whitespace()));
        if stop {
            break;
        }
        end += 1;
    }
    end
}

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Keys whose values are secrets in query strings and key=value connection strings.
const SECRET_KEYS: &[&str] = &["password", "pwd", "sslpassword"];

/// Byte ranges of `text` that hold secrets, sorted and disjoint.
fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = userinfo_passwords(text);
    spans.extend(keyed_secrets(text));
    spans.sort_by_key(|s| s.start);
    // A keyed secret inside the user info (odd, but possible) overlaps it: keep the first.
    spans.dedup_by(|later, earlier| later.start < earlier.end);
    spans
}

/// The password in each `scheme://user:password@host` of `text`. A URL
/// runs to the next whitespace, quote or angle bracket; one inside another
/// (`?next=http://...`) is read on its own too.
fn userinfo_passwords(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(text.len(), |n| start + n);
        if let Some(span) = url_password(&text[start..end]) {
            spans.push(start + span.start..start + span.end);
        }
        from = start;
    }
    spans
}

/// The password in `rest`, a URL after its `scheme://`.
///
/// The user info ends at the last `@` before the query (`?`) or fragment
/// (`#`), so an unencoded `/` or `@` in a password does not leak it and an
/// `@` in the query (`application_name=svc@eu`) is not taken for it. A
/// password with an unencoded `?` or `#` puts its `@` past them: then the
/// first later `@` counts, unless the URL starts `host:port` (digits, then a
/// path, query or fragment) or what follows the `@` is no host.
fn url_password(rest: &str) -> Option<Range<usize>> {
    // No authority (`file:///`), or a bracketed host first (`[::1]`).
    if rest.starts_with(['/', '[']) {
        return None;
    }
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..query].rfind('@') {
        let colon = rest[..at].find(':')?;
        return Some(colon + 1..at);
    }
    let colon = rest.find(':')?;
    if colon > query || rest[..colon].contains(['/', '@']) {
        return None;
    }
    let after = &rest.as_bytes()[colon + 1..];
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && matches!(after.get(digits), None | Some(b'/' | b'?' | b'#')) {
        return None; // host:port
    }
    let at = colon + rest[colon..].find('@')?;
    let host_end = rest[at + 1..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |n| at + 1 + n);
    // Empty for a Unix socket (`@/db?host=/run`); a list for libpq's hosts.
    let host_like = rest[at + 1..host_end].bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'%' | b'_' | b',')
    });
    host_like.then_some(colon + 1..at)
}

/// Values of `password=...` style keys: `key=value` up to the next
/// separator, with spaces allowed around `=` and a `'quoted value'` (libpq's
/// syntax) taken whole.
fn keyed_secrets(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(key) {
            let key_start = from + found;
            from = key_start + key.len();
            // Only a whole key counts: `sslpassword` must not also match as `password`.
            let boundary =
                key_start == 0 || matches!(bytes[key_start - 1], b'?' | b'&' | b';' | b' ' | b'\t');
            if !boundary {
                continue;
            }
            let mut i = from;
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if bytes.get(i) != Some(&b'=') {
                continue;
            }
            i += 1;
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            let value_start = i;
            let value_end = if bytes.get(i) == Some(&b'\'') {
                quoted_end(bytes, i + 1)
            } else {
                text[value_start..]
                    .find(['&', ';', ' ', '\t', '#'])
                    .map_or(text.len(), |n| value_start + n)
            };
            if value_end > value_start {
                spans.push(value_start..value_end);
            }
        }
    }
    spans
}

/// Just past the quote that closes a libpq `'value'` whose text starts at
/// `from` (`\'` and `\\` escaped); the end of the text when none does.
fn quoted_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_secrets("postgres://user:pw@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            redact_secrets("postgres://user:@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            redact_secrets("postgres://u:p/w@d@host:5432/db"),
            "postgres://u:***@host:5432/db"
        );
        assert_eq!(
            redact_secrets("postgres://app:s3cr%40t@db:5432/main?sslmode=require"),
            "postgres://app:***@db:5432/main?sslmode=require"
        );
    }

    #[test]
    fn targets_without_secrets_are_unchanged() {
        for text in [
            "postgres://user@host/db",
            "postgres://host:5432/db",
            "/var/lib/tenants/{tenant}.db",
            "sqlite://data/{shard}.db?mode=rwc",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
    }

    #[test]
    fn keyed_passwords_are_redacted() {
        assert_eq!(
            redact_secrets("postgres://u:a@h/db?sslpassword=k&PASSWORD=b&x=1"),
            "postgres://u:***@h/db?sslpassword=***&PASSWORD=***&x=1"
        );
        assert_eq!(
            redact_secrets("postgres://db/main?user=app&password=hunter2"),
            "postgres://db/main?user=app&password=***"
        );
        assert_eq!(
            redact_secrets("host=db1 user=app password=s3cret dbname=t"),
            "host=db1 user=app password=*** dbname=t"
        );
        assert_eq!(
            redact_secrets("Server=db;Pwd=x;Database=t"),
            "Server=db;Pwd=***;Database=t"
        );
        // `mypassword=` is not a secret key, only a key that ends like one.
        assert_eq!(redact_secrets("x?mypassword=1"), "x?mypassword=1");
        assert_eq!(redact_secrets("host=db passwords=1"), "host=db passwords=1");
    }

    #[test]
    fn odd_characters_and_spacing_do_not_leak_a_password() {
        for (text, secret) in [
            ("postgres://u:p#ss@host/db", "p#ss"),
            ("postgres://u:p?ss@host/db?sslmode=require", "p?ss"),
            ("postgres://u:a/b?c#d@host:5432/db", "a/b?c#d"),
            ("host=db password = s3cret dbname=t", "s3cret"),
            ("host=db password\t=\ts3cret", "s3cret"),
            ("host=db password='with space' dbname=t", "with space"),
            ("host=db password='it\\'s' dbname=t", "it\\'s"),
        ] {
            let redacted = redact_secrets(text);
            assert!(!redacted.contains(secret), "{text} -> {redacted}");
            assert!(redacted.contains(REDACTED), "{text} -> {redacted}");
        }
        assert_eq!(
            redact_secrets("host=db password = 'a b' dbname=t"),
            "host=db password = *** dbname=t"
        );
        assert_eq!(
            redact_secrets("postgres://u:p#ss@host/db"),
            "postgres://u:***@host/db"
        );
        // No user info: a path or query with `@` keeps what holds no password.
        for text in [
            "postgres://host/db?application_name=a@b",
            "postgres://db1:5432/t_acme?application_name=svc@eu",
            "postgres://db1:5432?application_name=svc@eu",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
        assert_eq!(
            redact_secrets("postgres://app:pw@db1:5432/t_acme?application_name=svc@eu"),
            "postgres://app:***@db1:5432/t_acme?application_name=svc@eu"
        );
        assert_eq!(
            redact_secrets("postgres://db:5432/x?user=app@srv&password=k"),
            "postgres://db:5432/x?user=app@srv&password=***"
        );
        for (text, secret) in [
            (
                "[\"postgres://a/x?sslmode=require\",\"postgres://u:pw@b/y\"]",
                "pw@",
            ),
            ("https://e.com/a?next=http://u:pw@h/x", ":pw@"),
            ("postgres://app:p?w@/db?host=/var/run/postgresql", "p?w"),
            ("postgres://u:p?w@h1:5432,h2:5432/db", "p?w"),
            ("url=postgres://app:p#w@db1, retrying", "p#w"),
            ("postgres://app:p?x=1@db/main", "p?x=1"),
            ("postgres://app:a#b&c@db/main", "a#b&c"),
        ] {
            let redacted = redact_secrets(text);
            assert!(!redacted.contains(secret), "{text} -> {redacted}");
        }
        for text in [
            "postgres://[::1]:5432/t@x",
            "file:///data/a:b@c.txt",
            "http://localhost:3000/#/users/alice@example.com",
            "http://[fe80::1%25eth0]:80/a?b@c",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
        // Each URL of a text on its own.
        assert_eq!(
            redact_secrets("see https://docs/x: connecting to postgres://app:pw@db/main"),
            "see https://docs/x: connecting to postgres://app:***@db/main"
        );
    }

    #[test]
    fn templates_are_filled() {
        let filled = fill_template(
            "postgres://h/{tenant}?x={shard}&r={region}",
            &"acme".parse().unwrap(),
            &"eu-1".parse().unwrap(),
            &"eu-west".parse().unwrap(),
        );
        assert_eq!(filled, "postgres://h/acme?x=eu-1&r=eu-west");
    }

    #[test]
    fn path_directories_are_elided() {
        for (text, want) in [
            (
                "sqlite schema failed: opening /tmp/x/databases/eu-west/eu-1/acme.sqlite: unable to open database file",
                "sqlite schema failed: opening …/acme.sqlite: unable to open database file",
            ),
            ("(/a/b/c.db)", "(…/c.db)"),
            ("path=/a/b, then", "path=…/b, then"),
            ("'/a/b/c'.", "'…/c'."),
            ("at /a/b/c.", "at …/c."),
            (
                "url sqlite:///srv/data/t.db?mode=rwc",
                "url sqlite://…/t.db?mode=rwc",
            ),
            ("file:///srv/data/t.db", "file://…/t.db"),
            (
                r"cannot open C:\data\eu\acme.sqlite",
                r"cannot open …\acme.sqlite",
            ),
            ("/only/one: two", "…/one: two"),
            ("/é/ü/ß.db ok", "…/ß.db ok"),
            ("file:/srv/x/y.db", "file:…/y.db"),
            ("path:/a/b/c", "path:…/c"),
            ("at C:/data/eu/t.db", "at …/t.db"),
            (r"share \\srv\share\eu\t.db", r"share …\t.db"),
        ] {
            assert_eq!(redact_paths(text), want, "{text}");
        }
        for text in [
            "postgres://db1:5432/main",
            "postgres://app:***@db1/main?host=db",
            "and/or a/b/c relative",
            "/tmp alone",
            "a // b / c",
            "https://example.com/a/b",
            "ratio 3/4 and 1/2",
            "ünïcödé/ /ñ",
            "",
        ] {
            assert_eq!(redact_paths(text), text);
        }
    }

    proptest::proptest! {
        /// Whatever surrounds it, an absolute path's directories never survive.
        #[test]
        fn no_directory_of_a_path_survives(
            before in "[a-z ():=,\"'é]{0,12}",
            style in 0..3usize,
            dirs in proptest::collection::vec("[A-Za-z0-9_.-]{1,8}", 1..5),
            file in "[A-Za-z0-9_-]{1,8}",
            after in "(: [a-z ]{0,10})?",
        ) {
            let sep = if before.is_empty() || before.ends_with([' ', '(', '=', ',', '"', '\'', ':']) { "" } else { " " };
            let path = match style {
                0 => format!("/{}/{file}", dirs.join("/")),
                1 => format!("C:\\{}\\{file}", dirs.join("\\")),
                _ => format!("\\\\{}\\{file}", dirs.join("\\")),
            };
            let text = format!("{before}{sep}{path}{after}");
            let redacted = redact_paths(&text);
            proptest::prop_assert!(!redacted.contains(&path), "{text} -> {redacted}");
            let kept = format!("…{}{file}", if style == 0 { '/' } else { '\\' });
            proptest::prop_assert!(redacted.contains(&kept), "{text} -> {redacted}");
        }
    }
}
