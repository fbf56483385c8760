//! The live bus: per-session broadcast of estimates and capture events. Ingest (the API and the
//! capture pipeline) publishes; the SSE handler subscribes. Nothing here knows about HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use emo_api_types::LiveEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

/// One broadcast channel per session with listeners. Slow listeners skip events rather than
/// slowing the pipeline. The latest state of each capture source and the latest stats are kept,
/// so a client that connects after the sources opened (the TUI subscribes once the start
/// request has answered) still learns what is capturing.
#[derive(Default)]
pub struct LiveBus {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<LiveEvent>>>,
    latest: Mutex<HashMap<Uuid, BTreeMap<String, LiveEvent>>>,
}

impl LiveBus {
    /// A receiver for `id`'s events and the current source states / stats to show first.
    pub fn subscribe_with_state(
        &self,
        id: Uuid,
    ) -> (broadcast::Receiver<LiveEvent>, Vec<LiveEvent>) {
        let rx = self.subscribe(id);
        let state = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        (rx, state)
    }

    pub fn subscribe(&self, id: Uuid) -> broadcast::Receiver<LiveEvent> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id)
            .or_insert_with(|| broadcast::channel(256).0)
            .subscribe()
    }

    pub fn publish(&self, id: Uuid, event: LiveEvent) {
        let key = match &event {
            LiveEvent::Source { source, .. } => Some(format!("source:{source}")),
            LiveEvent::Stats(_) => Some("stats".to_string()),
            _ => None,
        };
        if let Some(k) = key {
            self.latest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id)
                .or_default()
                .insert(k, event.clone());
        }
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&id) {
            let _ = tx.send(event);
        }
    }

    pub fn close(&self, id: Uuid) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emo_api_types::SourceState;

    #[test]
    fn late_subscribers_get_the_current_source_states() {
        let bus = LiveBus::default();
        let id = Uuid::now_v7();
        let src = |s: SourceState| LiveEvent::Source {
            source: "camera".into(),
            state: s,
            message: String::new(),
        };
        bus.publish(id, src(SourceState::Active));
        bus.publish(id, src(SourceState::Lost));
        let (_, state) = bus.subscribe_with_state(id);
        assert_eq!(state.len(), 1);
        assert!(matches!(
            state[0],
            LiveEvent::Source {
                state: SourceState::Lost,
                ..
            }
        ));
        bus.close(id);
        assert!(bus.subscribe_with_state(id).1.is_empty());
    }
}
