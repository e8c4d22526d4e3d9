//! Endpoints: where a model is published, `"{app}/{model}"` — two or more names (letters,
//! digits, `_`, `-`) separated by `/`, the first being the publishing app (`docs/PROTOCOL.md`,
//! "Terms").

/// A segment of an endpoint, or an app name: non-empty, letters, digits, `_` or `-`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is an endpoint: two or more names separated by `/` (the schema's
/// `^name(/name)+$`).
pub fn is_endpoint(s: &str) -> bool {
    let mut segments = s.split('/');
    segments.clone().count() >= 2 && segments.all(is_name)
}

/// The publishing app of an endpoint or of an instance key: its first segment (also the
/// routing key of its messages). The whole string if it has no `/`.
pub fn app(endpoint_or_key: &str) -> &str {
    endpoint_or_key
        .split_once('/')
        .map_or(endpoint_or_key, |(app, _)| app)
}

/// The model of an endpoint: its last segment (`crowdtap/page_view` → `page_view`). The whole
/// string if it has no `/`.
pub fn model(endpoint: &str) -> &str {
    endpoint
        .rsplit_once('/')
        .map_or(endpoint, |(_, model)| model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_two_or_more_names() {
        assert!(is_endpoint("crowdtap/user"));
        assert!(is_endpoint("a/v2/user-x_y"));
        for bad in ["user", "", "a/", "/b", "a//b", "a/b c", "a/b.c", "a/é"] {
            assert!(!is_endpoint(bad), "{bad:?}");
        }
    }

    #[test]
    fn app_and_model_are_the_first_and_last_segments() {
        assert_eq!(app("crowdtap/user"), "crowdtap");
        assert_eq!(app("crowdtap/user/7"), "crowdtap");
        assert_eq!(app("odd"), "odd");
        assert_eq!(model("crowdtap/page_view"), "page_view");
        assert_eq!(model("a/v2/user"), "user");
        assert_eq!(model("odd"), "odd");
    }
}
