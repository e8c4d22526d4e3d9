//! [`MacroKind`]: which macro is expanding, for the rules that differ between them and for
//! naming it in messages as the user wrote it.

use std::fmt;

/// One of the crate's macros (the two kinds of `define!` line included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroKind {
    /// `#[publish]`.
    Publish,
    /// `#[subscribe]`.
    Subscribe,
    /// `#[ephemeral]`.
    Ephemeral,
    /// `#[observer]`.
    Observer,
    /// A `publish(..) for path::Model;` line of `define!`.
    DefinePublish,
    /// A `subscribe(..) for path::Model;` line of `define!`.
    DefineSubscribe,
}

impl MacroKind {
    /// The attribute's name (`publish`), as stacked attributes of the same macro are found.
    pub fn name(self) -> &'static str {
        match self {
            MacroKind::Publish | MacroKind::DefinePublish => "publish",
            MacroKind::Subscribe | MacroKind::DefineSubscribe => "subscribe",
            MacroKind::Ephemeral => "ephemeral",
            MacroKind::Observer => "observer",
        }
    }

    /// Whether it goes on the `Model` struct of a SeaORM entity (else on a plain struct).
    pub fn on_model(self) -> bool {
        !matches!(self, MacroKind::Ephemeral | MacroKind::Observer)
    }

    /// What it goes on, for messages.
    pub fn target(self) -> &'static str {
        if self.on_model() {
            "the `Model` struct of a SeaORM entity"
        } else {
            "a struct with named fields"
        }
    }
}

/// The macro as the user writes it: `#[publish]`, or `` `publish(..)` in `define!` ``.
impl fmt::Display for MacroKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacroKind::DefinePublish | MacroKind::DefineSubscribe => {
                write!(f, "`{}(..)` in `define!`", self.name())
            }
            _ => write!(f, "#[{}]", self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MacroKind;

    #[test]
    fn kinds_are_named_as_written() {
        assert_eq!(MacroKind::Publish.to_string(), "#[publish]");
        assert_eq!(MacroKind::Observer.to_string(), "#[observer]");
        assert_eq!(
            MacroKind::DefinePublish.to_string(),
            "`publish(..)` in `define!`"
        );
        assert_eq!(MacroKind::DefineSubscribe.name(), "subscribe");
        assert!(MacroKind::DefineSubscribe.on_model() && !MacroKind::Ephemeral.on_model());
    }
}
