//! Who may send what: a decoded message is admitted only from its owner. Its routing key must
//! be its `app` (the broker routes by routing key, so a message of app A sent with app B's
//! routing key would reach B's subscribers as if B had sent it), and, when the subscriber
//! requires it, the broker-validated user (AMQP `user_id`) must be its `app` too. Every
//! endpoint and write dependency of a message belongs to its `app`: the decoder checks that.
//! A message refused here is dead-lettered like any invalid one.

use crate::message::{DecodeError, Message};

/// Checks `message` against how it arrived: its `routing_key` and broker-validated `user_id`.
/// Dead-letter replays run it again with what the letter recorded.
pub fn admit(
    message: Message,
    routing_key: &str,
    user_id: Option<&str>,
    require_user_id: bool,
) -> Result<Message, DecodeError> {
    let refuse = |reason: String| DecodeError::Untrusted {
        message: message.id.clone(),
        reason,
    };
    if routing_key != message.app {
        return Err(refuse(format!(
            "app {:?} published with routing key {routing_key:?}: a message of app {:?} must \
             be routed with the key {:?}",
            message.app, message.app, message.app
        )));
    }
    if require_user_id {
        match user_id {
            Some(user) if user == message.app => {}
            Some(user) => {
                return Err(refuse(format!(
                    "app {:?} published by broker user {user:?}: this subscriber requires \
                     each app to publish as the broker user of its name (require_user_id)",
                    message.app
                )));
            }
            None => {
                return Err(refuse(format!(
                    "app {:?} published without a user_id: this subscriber requires each app \
                     to publish as the broker user of its name (require_user_id)",
                    message.app
                )));
            }
        }
    }
    Ok(message)
}
