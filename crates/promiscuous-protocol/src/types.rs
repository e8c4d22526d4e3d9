//! Type names: the `types` of an operation. A publisher sends the model's name in
//! UpperCamelCase unless configured otherwise (`docs/PROTOCOL.md`, "Operation"); the macros and
//! the test kit both derive it here, so they agree.

use heck::ToUpperCamelCase;

/// The type name of model `model` (an endpoint's last segment) in UpperCamelCase, as heck's
/// `ToUpperCamelCase` writes it: words split at `_`, `-` and case changes, each capitalised
/// (`page_view` → `PageView`, `HTMLPage` → `HtmlPage`).
pub fn type_name(model: &str) -> String {
    model.to_upper_camel_case()
}

/// The type a publisher sends by default for `endpoint`: its model's [`type_name`]
/// (`crowdtap/page_view` → `PageView`).
pub fn default_type(endpoint: &str) -> String {
    type_name(crate::endpoint::model(endpoint))
}

/// Whether `name` may be a type name in `as` or `extends`: non-empty, ASCII letters, digits,
/// `_` or `:` (`User`, `Admin::User`).
pub fn is_type_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_types_are_upper_camel_case() {
        assert_eq!(default_type("crowdtap/user"), "User");
        assert_eq!(default_type("crowdtap/page_view"), "PageView");
        assert_eq!(default_type("crowdtap/page-view"), "PageView");
        assert_eq!(default_type("crowdtap/HTMLPage"), "HtmlPage");
        assert_eq!(default_type("crowdtap/html_page"), "HtmlPage");
        assert_eq!(default_type("a/v2/user"), "User");
        assert_eq!(default_type("odd"), "Odd");
    }

    #[test]
    fn type_names_are_letters_digits_underscores_and_paths() {
        for good in ["User", "Admin::User", "V2_user"] {
            assert!(is_type_name(good), "{good:?}");
        }
        for bad in ["", "A B", "A,B", "Üser", "A.B"] {
            assert!(!is_type_name(bad), "{bad:?}");
        }
    }
}
