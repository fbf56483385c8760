//! What a username, a password and a display name may be, and how names reach a log line.

/// A username as it may exist: 1–64 ASCII letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit. Lookups (login, `/users/{name}`) check this, so accounts created before
/// [`validate_new_username`] tightened the rule keep working. The message never repeats the
/// name: it may be a megabyte of control characters.
pub fn validate_username(name: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err("invalid username: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit".into())
    }
}

/// A name for a new account: [`validate_username`], and it must also end with a letter or digit
/// and have no two of `.`, `_`, `-` in a row, so `alice.` or `alice--` cannot sit beside `alice` in
/// an admin's list looking like the same person (issue 28, item 12). Names that differ only in
/// case are refused by the store.
pub fn validate_new_username(name: &str) -> Result<(), String> {
    let punct = |c: char| !c.is_ascii_alphanumeric();
    let ok_last = name.chars().last().is_some_and(|c| !punct(c));
    let ok_runs = !name
        .chars()
        .zip(name.chars().skip(1))
        .any(|(a, b)| punct(a) && punct(b));
    match validate_username(name) {
        Ok(()) if ok_last && ok_runs => Ok(()),
        _ => Err("invalid username: use 1-64 letters, digits and single '.', '_' or '-' between them, starting and ending with a letter or digit".into()),
    }
}

pub fn validate_password(password: &str, min_len: usize) -> Result<(), String> {
    if password.chars().count() < min_len {
        return Err(format!("password must be at least {min_len} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    if password.chars().all(char::is_whitespace) {
        return Err("password must not be only spaces".into());
    }
    Ok(())
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// Display names are shown in admins' terminals: no control characters (an `ESC]2;…` retitles
/// a tmux pane), at most [`MAX_DISPLAY_NAME_CHARS`].
pub fn validate_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!(
            "display_name must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::sessions::validate::is_invisible(c))
    {
        return Err(
            "display_name must not contain control, invisible or text-direction characters".into(),
        );
    }
    Ok(())
}

/// A client-supplied string made safe for one log line: control characters escaped, at most
/// `max` characters (the rest counted, not written).
pub fn log_safe(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str(&format!("…(+{} chars)", s.chars().count() - max));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
