//! Secrets in source URLs stay inside the process: `ffmpeg:rtsp://user:secret@host/...` is
//! written `rtsp://user:***@host/...` wherever a source leaves it (the API, errors, events,
//! logs, `emod config show`, `emod doctor`).

/// Query parameters whose values are secrets (matched in the key, any case).
const SECRET_KEYS: [&str; 10] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "sig",
    "credential",
    "session",
    "cookie",
];

/// `text` with every URL's password (`user:***@`; a userinfo without a colon, often a token,
/// becomes `***@`) and the values of secret-looking query parameters (`?token=***`) replaced.
/// Text without `://` is returned unchanged.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
        out.push_str(&redact_url_tail(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `user:pass@host/path?query#frag` (what follows `scheme://`) with its secrets replaced.
fn redact_url_tail(url: &str) -> String {
    let auth_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, tail) = url.split_at(auth_end);
    let mut out = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***{}", &authority[at..]),
            None => format!("***{}", &authority[at..]),
        },
        None => authority.to_string(),
    };
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let (query, frag) = match tail[q + 1..].split_once('#') {
        Some((query, frag)) => (query, Some(frag)),
        None => (&tail[q + 1..], None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if secret_key(k) => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    out.push_str(&params.join("&"));
    if let Some(f) = frag {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::redact_secrets as r;

    #[test]
    fn passwords_tokens_and_secret_parameters_are_replaced() {
        assert_eq!(
            r("ffmpeg:rtsp://user:secret@10.0.0.5:554/stream1"),
            "ffmpeg:rtsp://user:***@10.0.0.5:554/stream1"
        );
        assert_eq!(
            r("ffmpeg:-rtsp_transport tcp rtsp://admin:p@ss:w@cam/live"),
            "ffmpeg:-rtsp_transport tcp rtsp://admin:***@cam/live"
        );
        assert_eq!(
            r("ffmpeg:https://abcdef@cam.example/x?res=hd&token=s3cr3t&api_key=k#t"),
            "ffmpeg:https://***@cam.example/x?res=hd&token=***&api_key=***#t"
        );
        assert_eq!(
            r("camera unavailable: ffmpeg:http://h/a?Password=x: Connection refused (rtsp://u:v@h)"),
            "camera unavailable: ffmpeg:http://h/a?Password=*** Connection refused (rtsp://u:***@h)"
        );
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for s in [
            "auto",
            "file:/srv/demo user@host.mp4",
            "ffmpeg:rtsp://10.0.0.5/stream1?channel=1",
            "ffmpeg:-f v4l2 /dev/video0",
            "",
            "://",
        ] {
            assert_eq!(r(s), s);
        }
    }
}
