//! A single-line text field.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::keys::{self, Action};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    pub value: String,
}

impl Input {
    pub fn new(v: &str) -> Self {
        Input {
            value: v.to_string(),
        }
    }

    /// Edits the field with the keys of [`keys::FIELDS`] or by typing a character; returns
    /// false if the key is neither.
    pub fn edit(&mut self, key: &KeyEvent) -> bool {
        match keys::action(&keys::FIELDS, key) {
            Some(Action::ClearField) => self.value.clear(),
            Some(Action::DeleteChar) => {
                self.value.pop();
            }
            _ => match key.code {
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    if self.value.chars().count() < 200 {
                        self.value.push(c);
                    }
                }
                _ => return false,
            },
        }
        true
    }

    pub fn masked(&self) -> String {
        "•".repeat(self.value.chars().count())
    }
}
