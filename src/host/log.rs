//! Log records as a binding hands them to its host language: the library only emits
//! `tracing` events; a binding that forwards them (Python `logging`, a C callback)
//! turns each into one line of text here, the same way for every language.

use tracing::field::{Field, Visit};

/// One event as text: its message, then ` key=value` for each other field.
///
/// ```
/// // (inside a `tracing_subscriber::Layer::on_event`)
/// # fn on_event(event: &tracing::Event<'_>) -> String {
/// swarmcast::host::event_text(event) // "connected sid=abc transport=websocket"
/// # }
/// ```
pub fn event_text(event: &tracing::Event<'_>) -> String {
    let mut text = Text::default();
    event.record(&mut text);
    text.message + &text.fields
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields += &format!(" {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields += &format!(" {}={value:?}", field.name());
        }
    }
}
