//! Mock publishers built from a publisher's exported definitions: they send only what the real
//! publisher can send (its endpoints, type chains and attributes, full attribute maps), as the
//! real protocol payloads of [`MockPublisher`], so a subscriber is tested against the
//! publisher's contract without its code or database.
//!
//! ```no_run
//! # async fn demo(subscriber: promiscuous_sea_orm::SubscriberService) -> Result<(), Box<dyn std::error::Error>> {
//! use promiscuous_test::{Definitions, IDLE, MockPublisher};
//! use serde_json::json;
//!
//! let broker = promiscuous_core::transport::InProcess::new();
//! let definitions = Definitions::load("tests/crowdtap.json")?;
//! let mut crowdtap = MockPublisher::from_definitions("crowdtap", &definitions, broker.clone())?;
//! let yoda = crowdtap.create_from_factory("crowdtap/user", json!({"name": "Yoda"})).await?;
//! let id = yoda.operations[0].id.clone();
//! crowdtap.update("crowdtap/user", id.clone(), json!({"name": "Master Yoda"})).await?;
//! crowdtap.destroy("crowdtap/user", id).await?;
//! subscriber.run_until_idle(IDLE).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use promiscuous_core::message::instance_key;
use promiscuous_core::transport::Transport;
use promiscuous_core::{Message, OperationKind};
use serde_json::{Map, Value, json};

use crate::MockPublisher;
use crate::definitions::Definitions;
use crate::factory::{self, Factory};

pub use crate::error::MockError;

impl MockPublisher {
    /// A mock of publisher app `app` that sends only what `definitions` publish (see
    /// [`DefinedPublisher`]).
    pub fn from_definitions(
        app: impl Into<String>,
        definitions: &Definitions,
        transport: impl Transport,
    ) -> Result<DefinedPublisher, MockError> {
        DefinedPublisher::new(app, definitions.clone(), transport)
    }
}

/// A [`MockPublisher`] held to a publisher's definitions.
///
/// - It refuses (with a [`MockError`], before sending anything) an endpoint that is not in the
///   definitions or not of its app, a type (`create_as`) not published to the endpoint, and an
///   attribute not published with it; update and destroy of an ephemeral.
/// - It sends what the real publisher sends: the type chain of the definitions (an instance
///   created `as` a type keeps it), and every published attribute: on a create, those not
///   given come from the [`Factory`]; on an update, from the instance's last state.
pub struct DefinedPublisher {
    mock: MockPublisher,
    app: String,
    factory: Factory,
    /// Per instance key: the type it was created as, and its last attributes.
    instances: HashMap<String, (Option<String>, Map<String, Value>)>,
}

impl DefinedPublisher {
    pub fn new(
        app: impl Into<String>,
        definitions: Definitions,
        transport: impl Transport,
    ) -> Result<Self, MockError> {
        let app = app.into();
        if !definitions.apps().contains(&app.as_str()) {
            return Err(MockError::UnknownApp {
                app,
                apps: definitions.apps().into_iter().map(String::from).collect(),
            });
        }
        Ok(Self {
            mock: MockPublisher::new(app.clone(), transport),
            app,
            factory: Factory::new(definitions),
            instances: HashMap::new(),
        })
    }

    pub fn definitions(&self) -> &Definitions {
        self.factory.definitions()
    }

    /// The factory filling attributes (its sequence numbers are shared with
    /// [`DefinedPublisher::create_from_factory`]).
    pub fn factory(&mut self) -> &mut Factory {
        &mut self.factory
    }

    /// The unchecked mock underneath, for bad input (`raw`, hand-made messages).
    pub fn unchecked(&mut self) -> &mut MockPublisher {
        &mut self.mock
    }

    /// The message the publisher would send for one operation (not sent): checked against the
    /// definitions, attributes completed, type chain filled. `type_name` picks a type of a
    /// polymorphic endpoint; without it, the type the instance was created as, or the
    /// endpoint's base type.
    pub fn message(
        &mut self,
        endpoint: &str,
        type_name: Option<&str>,
        id: Value,
        kind: OperationKind,
        attributes: Value,
    ) -> Result<Message, MockError> {
        self.build(endpoint, type_name, id, kind, attributes, None)
    }

    /// [`DefinedPublisher::message`], the factory's defaults numbered `n` (else the next
    /// number of the endpoint).
    fn build(
        &mut self,
        endpoint: &str,
        type_name: Option<&str>,
        id: Value,
        kind: OperationKind,
        attributes: Value,
        n: Option<u64>,
    ) -> Result<Message, MockError> {
        let key = instance_key(endpoint, &id);
        let known = self.instances.get(&key);
        let type_name = type_name
            .map(String::from)
            .or_else(|| known.and_then(|(t, _)| t.clone()));
        let entry = factory::entry(self.definitions(), endpoint, type_name.as_deref())?.clone();
        if entry.app() != self.app {
            return Err(MockError::OtherApp {
                endpoint: endpoint.to_string(),
                app: self.app.clone(),
            });
        }
        if entry.ephemeral && kind != OperationKind::Create {
            return Err(MockError::Ephemeral {
                endpoint: endpoint.to_string(),
                operation: kind,
            });
        }
        let attributes = match kind {
            OperationKind::Destroy => {
                factory::check_attributes(&entry, &factory::object(attributes)?)?;
                None
            }
            OperationKind::Update if known.is_some() => {
                let given = factory::object(attributes)?;
                factory::check_attributes(&entry, &given)?;
                let mut all = known.map(|(_, a)| a.clone()).unwrap_or_default();
                all.retain(|k, _| entry.attribute(k).is_some());
                all.extend(given);
                for a in &entry.attributes {
                    all.entry(a.name.clone()).or_insert(Value::Null);
                }
                Some(all)
            }
            OperationKind::Create | OperationKind::Update => {
                let given = factory::object(attributes)?;
                factory::check_attributes(&entry, &given)?;
                let n = n.unwrap_or_else(|| self.factory.next(endpoint));
                Some(factory::build(&entry, n, Value::Object(given))?)
            }
        };
        let mut message =
            self.mock
                .message(endpoint, id, kind, attributes.clone().map(Value::Object));
        message.operations[0].types = entry.types.clone();
        match attributes {
            Some(a) => {
                self.instances.insert(key, (type_name, a));
            }
            None => {
                self.instances.remove(&key);
            }
        }
        Ok(message)
    }

    async fn send(&self, message: Message) -> Result<Message, MockError> {
        self.mock.send(&message).await?;
        Ok(message)
    }

    /// Creates instance `id` of the endpoint's base type: `attributes` (an object, may be
    /// partial or `null`), the other published attributes from the factory.
    pub async fn create(
        &mut self,
        endpoint: &str,
        id: Value,
        attributes: Value,
    ) -> Result<Message, MockError> {
        let m = self.message(endpoint, None, id, OperationKind::Create, attributes)?;
        self.send(m).await
    }

    /// [`DefinedPublisher::create`] as type `type_name` of a polymorphic endpoint (its later
    /// updates and destroy keep that type).
    pub async fn create_as(
        &mut self,
        endpoint: &str,
        type_name: &str,
        id: Value,
        attributes: Value,
    ) -> Result<Message, MockError> {
        let m = self.message(
            endpoint,
            Some(type_name),
            id,
            OperationKind::Create,
            attributes,
        )?;
        self.send(m).await
    }

    /// Creates a new instance made by the factory: an integer id `n` from the endpoint's
    /// sequence (one not used yet by this mock), every attribute from the factory (numbered
    /// `n` too: `"name-n"`) but `overrides`. The id is the message's `operations[0].id`.
    pub async fn create_from_factory(
        &mut self,
        endpoint: &str,
        overrides: Value,
    ) -> Result<Message, MockError> {
        // Check first: no sequence number is used by a refused create.
        factory::entry(self.definitions(), endpoint, None)?;
        let n = loop {
            let n = self.factory.next(endpoint);
            if !self
                .instances
                .contains_key(&instance_key(endpoint, &json!(n)))
            {
                break n;
            }
        };
        let m = self.build(
            endpoint,
            None,
            json!(n),
            OperationKind::Create,
            overrides,
            Some(n),
        )?;
        self.send(m).await
    }

    /// Updates instance `id`: its last attributes (or, for an instance this mock did not
    /// create, the factory's), with `attributes` on top; `changes` hold what differs.
    pub async fn update(
        &mut self,
        endpoint: &str,
        id: Value,
        attributes: Value,
    ) -> Result<Message, MockError> {
        let m = self.message(endpoint, None, id, OperationKind::Update, attributes)?;
        self.send(m).await
    }

    /// Destroys instance `id`.
    pub async fn destroy(&mut self, endpoint: &str, id: Value) -> Result<Message, MockError> {
        let m = self.message(endpoint, None, id, OperationKind::Destroy, Value::Null)?;
        self.send(m).await
    }
}

#[cfg(test)]
mod tests {
    use promiscuous_core::transport::InProcess;

    use super::*;

    fn crowdtap() -> Definitions {
        Definitions::from_json(crate::definitions::tests::CROWDTAP).unwrap()
    }

    fn mock() -> DefinedPublisher {
        MockPublisher::from_definitions("crowdtap", &crowdtap(), InProcess::new()).unwrap()
    }

    #[test]
    fn messages_carry_the_type_chain_and_every_attribute() {
        let mut m = mock();
        let create = m
            .message(
                "crowdtap/user",
                Some("Admin"),
                json!(1000),
                OperationKind::Create,
                json!({"name": "Yoda"}),
            )
            .unwrap();
        let op = &create.operations[0];
        assert_eq!(create.app, "crowdtap");
        assert_eq!(op.types, ["Admin", "User"]);
        assert_eq!(op.version, 1);
        assert_eq!(
            Value::Object(op.attributes.clone().unwrap()),
            json!({"name": "Yoda", "level": 1})
        );
        // The update keeps the type and the other attributes; `changes` hold what changed.
        let update = m
            .message(
                "crowdtap/user",
                None,
                json!(1000),
                OperationKind::Update,
                json!({"level": 9}),
            )
            .unwrap();
        let op = &update.operations[0];
        assert_eq!(op.types, ["Admin", "User"]);
        assert_eq!(op.version, 2);
        assert_eq!(
            Value::Object(op.attributes.clone().unwrap()),
            json!({"name": "Yoda", "level": 9})
        );
        let changes = op.changes.as_ref().unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (&changes["level"].before, &changes["level"].after),
            (&json!(1), &json!(9))
        );
        let destroy = m
            .message(
                "crowdtap/user",
                None,
                json!(1000),
                OperationKind::Destroy,
                Value::Null,
            )
            .unwrap();
        assert_eq!(destroy.operations[0].types, ["Admin", "User"]);
        assert_eq!(destroy.operations[0].attributes, None);
        // Without a type: the base type.
        let user = m
            .message(
                "crowdtap/user",
                None,
                json!(1),
                OperationKind::Create,
                Value::Null,
            )
            .unwrap();
        assert_eq!(user.operations[0].types, ["User"]);
    }

    #[test]
    fn refuses_what_the_publisher_does_not_publish() {
        let mut m = mock();
        let mut refused = |endpoint: &str, type_name: Option<&str>, kind, attributes| {
            m.message(endpoint, type_name, json!(1), kind, attributes)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused("crowdtap/member", None, OperationKind::Create, json!({})),
            "\"crowdtap/member\" is not in the publisher's definitions (published: \
             crowdtap/page_view, crowdtap/user)"
        );
        assert_eq!(
            refused(
                "crowdtap/user",
                Some("Moderator"),
                OperationKind::Create,
                json!({})
            ),
            "no type \"Moderator\" is published to \"crowdtap/user\" (types: Admin, User)"
        );
        assert_eq!(
            refused(
                "crowdtap/user",
                None,
                OperationKind::Update,
                json!({"password": "x"})
            ),
            "attribute `password` is not published to \"crowdtap/user\" as \"User\" \
             (published: name, email, full_name)"
        );
        assert_eq!(
            refused(
                "crowdtap/page_view",
                None,
                OperationKind::Destroy,
                Value::Null
            ),
            "\"crowdtap/page_view\" is an ephemeral, only ever created: it cannot be sent a \
             destroy"
        );
        assert_eq!(
            MockPublisher::from_definitions("legacy", &crowdtap(), InProcess::new())
                .err()
                .unwrap()
                .to_string(),
            "the publisher's definitions publish no endpoint of app \"legacy\" (apps: crowdtap)"
        );
        // Nothing refused took a version.
        let ok = m
            .message(
                "crowdtap/user",
                None,
                json!(1),
                OperationKind::Create,
                Value::Null,
            )
            .unwrap();
        assert_eq!(ok.operations[0].version, 1);
    }

    #[test]
    fn other_apps_endpoints_are_refused() {
        let mut definitions = crowdtap();
        let mut legacy = definitions.endpoints[0].clone();
        legacy.endpoint = "legacy/person".into();
        definitions.endpoints.push(legacy);
        let mut m =
            MockPublisher::from_definitions("crowdtap", &definitions, InProcess::new()).unwrap();
        assert_eq!(
            m.message(
                "legacy/person",
                None,
                json!(1),
                OperationKind::Create,
                Value::Null
            )
            .unwrap_err(),
            MockError::OtherApp {
                endpoint: "legacy/person".into(),
                app: "crowdtap".into()
            }
        );
    }
}
