//! The admin dashboard: tabs, the filter form and the export prompt ([`keys::DASHBOARD`],
//! [`keys::FILTERS`], [`keys::EXPORT`]), and the answers that fill it. Every (re)load bumps a
//! generation so that a slow answer to an older filter never replaces a newer one.

use std::path::PathBuf;

use emo_api_types::{
    AuditEntry, Bucket, Distribution, Emotion, Heatmap, HeatmapKind, Modality, Page, Role, Session,
    Timeline, User,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{App, Cmd, DashData, Input, Screen};
use crate::api::{ClientError, Query};
use crate::keys::{self, Action};
use crate::shaping;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashTab {
    Overview,
    Heatmap,
    Sessions,
    Audit,
}

impl DashTab {
    pub const ALL: [DashTab; 4] = [
        DashTab::Overview,
        DashTab::Heatmap,
        DashTab::Sessions,
        DashTab::Audit,
    ];
    pub fn title(self) -> &'static str {
        match self {
            DashTab::Overview => "Overview",
            DashTab::Heatmap => "Heatmap",
            DashTab::Sessions => "Sessions",
            DashTab::Audit => "Audit log",
        }
    }
    pub fn index(self) -> usize {
        DashTab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// The filter form's fields, in order.
pub const FILTER_FIELDS: [&str; 5] = ["Agent", "From", "To", "Emotion", "Modality"];

#[derive(Debug, Clone, Default)]
pub struct FilterForm {
    pub open: bool,
    pub focus: usize,
    pub agent: Input,
    pub from: Input,
    pub to: Input,
    pub emotion: Input,
    pub modality: Input,
}

impl FilterForm {
    pub fn field(&self, i: usize) -> &Input {
        match i {
            0 => &self.agent,
            1 => &self.from,
            2 => &self.to,
            3 => &self.emotion,
            _ => &self.modality,
        }
    }
    fn field_mut(&mut self, i: usize) -> &mut Input {
        match i {
            0 => &mut self.agent,
            1 => &mut self.from,
            2 => &mut self.to,
            3 => &mut self.emotion,
            _ => &mut self.modality,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DashState {
    pub tab: DashTab,
    pub form: FilterForm,
    /// The filter in force (what the data below was loaded with).
    pub query: Query,
    pub bucket: Bucket,
    pub distribution: Option<Distribution>,
    pub timeline: Option<Timeline>,
    pub heat_kind: HeatmapKind,
    pub heatmap: Option<Heatmap>,
    pub sessions: Vec<Session>,
    pub sessions_total: u64,
    pub selected: usize,
    pub audit: Vec<AuditEntry>,
    pub audit_offset: u64,
    pub audit_total: u64,
    pub audit_selected: usize,
    pub users: Vec<User>,
    pub export_prompt: Option<Input>,
    pub loaded: bool,
    /// Generation of the filter in force: bumped by every (re)load; answers carrying an older
    /// generation are dropped.
    pub gen: u64,
}

impl DashState {
    /// Nothing loaded yet; the filter starts at the fused estimates.
    pub fn new() -> Self {
        DashState {
            tab: DashTab::Overview,
            form: FilterForm {
                modality: Input::new("fused"),
                ..FilterForm::default()
            },
            query: Query {
                modality: Some(Modality::Fused),
                ..Query::default()
            },
            bucket: Bucket::Day,
            distribution: None,
            timeline: None,
            heat_kind: HeatmapKind::AgentEmotion,
            heatmap: None,
            sessions: Vec::new(),
            sessions_total: 0,
            selected: 0,
            audit: Vec::new(),
            audit_offset: 0,
            audit_total: 0,
            audit_selected: 0,
            users: Vec::new(),
            export_prompt: None,
            loaded: false,
            gen: 0,
        }
    }
}

impl Default for DashState {
    fn default() -> Self {
        Self::new()
    }
}

pub const AUDIT_PAGE: u64 = 100;

impl App {
    pub fn enter_dashboard(&mut self) -> Vec<Cmd> {
        self.screen = Screen::Dashboard;
        if self.dash.loaded {
            return vec![];
        }
        self.dash.loaded = true;
        let mut c = vec![Cmd::Users];
        c.extend(self.load_dashboard());
        c
    }

    fn heatmap_cmd(&self) -> Cmd {
        Cmd::Heatmap {
            query: self.dash.query.clone(),
            kind: self.dash.heat_kind,
            tz_offset_minutes: self.tz.local_minus_utc() / 60,
            gen: self.dash.gen,
        }
    }

    fn load_dashboard(&mut self) -> Vec<Cmd> {
        let q = self.dash.query.clone();
        self.dash.gen += 1;
        self.dash.bucket = shaping::choose_bucket(q.from, q.to, self.now);
        let mut c = vec![
            Cmd::Dashboard {
                query: q,
                bucket: self.dash.bucket,
                gen: self.dash.gen,
            },
            self.heatmap_cmd(),
        ];
        if self.dash.tab == DashTab::Audit {
            c.push(Cmd::Audit {
                offset: self.dash.audit_offset,
            });
        }
        c
    }

    pub(super) fn key_dashboard(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.dash.form.open {
            return self.key_filter_form(key);
        }
        if self.dash.export_prompt.is_some() {
            return self.key_export(key);
        }
        if let Some(c) = self.key_common(&key) {
            return c;
        }
        let tab = self.dash.tab;
        let tab_idx = tab.index();
        match keys::action(&keys::DASHBOARD, &key) {
            Some(Action::NextTab) => self.switch_tab(DashTab::ALL[(tab_idx + 1) % 4]),
            Some(Action::PrevTab) => self.switch_tab(DashTab::ALL[(tab_idx + 3) % 4]),
            Some(Action::GoTab) => match key.code {
                KeyCode::Char(c @ '1'..='4') => {
                    self.switch_tab(DashTab::ALL[c as usize - '1' as usize])
                }
                _ => vec![],
            },
            Some(Action::EditFilters) => {
                self.dash.form.open = true;
                vec![]
            }
            Some(Action::ClearFilters) => self.clear_filters(),
            Some(Action::Refresh) => {
                self.info("Refreshing…");
                let mut c = self.load_dashboard();
                c.push(Cmd::Users);
                c
            }
            Some(Action::Export) => {
                let name = format!(
                    "emo-export-{}.csv",
                    self.now.with_timezone(&self.tz).format("%Y%m%d-%H%M%S")
                );
                self.dash.export_prompt = Some(Input::new(&name));
                vec![]
            }
            Some(Action::SwitchHeatmap) if tab == DashTab::Heatmap => {
                self.dash.heat_kind = match self.dash.heat_kind {
                    HeatmapKind::AgentEmotion => HeatmapKind::WeekdayHour,
                    HeatmapKind::WeekdayHour => HeatmapKind::AgentEmotion,
                };
                self.dash.heatmap = None;
                vec![self.heatmap_cmd()]
            }
            Some(Action::AgentView) => {
                self.screen = Screen::Agent;
                if self.agent.loaded {
                    vec![]
                } else {
                    vec![self.my_sessions_cmd()]
                }
            }
            Some(Action::Down) => self.move_selection(1),
            Some(Action::Up) => self.move_selection(-1),
            Some(Action::PageDown) if tab == DashTab::Audit => self.audit_page(true),
            Some(Action::PageUp) if tab == DashTab::Audit => self.audit_page(false),
            Some(Action::Open) if tab == DashTab::Sessions => {
                match self.dash.sessions.get(self.dash.selected) {
                    Some(s) => {
                        let id = s.id;
                        self.open_detail(id, Screen::Dashboard)
                    }
                    None => vec![],
                }
            }
            _ => vec![],
        }
    }

    fn clear_filters(&mut self) -> Vec<Cmd> {
        let modality = self.dash.form.modality.value.clone();
        self.dash.form = FilterForm {
            modality: Input::new(&modality),
            ..FilterForm::default()
        };
        self.dash.query = Query {
            modality: self.dash.query.modality,
            ..Query::default()
        };
        self.info("Filters cleared.");
        self.load_dashboard()
    }

    /// The next (`forward`) or previous page of the audit log, if there is one.
    fn audit_page(&mut self, forward: bool) -> Vec<Cmd> {
        let d = &mut self.dash;
        let offset = if forward {
            if d.audit_offset + AUDIT_PAGE >= d.audit_total {
                return vec![];
            }
            d.audit_offset + AUDIT_PAGE
        } else {
            if d.audit_offset == 0 {
                return vec![];
            }
            d.audit_offset.saturating_sub(AUDIT_PAGE)
        };
        d.audit_offset = offset;
        d.audit_selected = 0;
        vec![Cmd::Audit { offset }]
    }

    fn key_export(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let Some(input) = self.dash.export_prompt.as_mut() else {
            return vec![];
        };
        match keys::action(&keys::EXPORT, &key) {
            Some(Action::Cancel) => {
                self.dash.export_prompt = None;
                self.info("Export cancelled.");
                vec![]
            }
            Some(Action::Submit) => {
                let path = input.value.trim().to_string();
                self.dash.export_prompt = None;
                if path.is_empty() {
                    self.error("Give a file name for the export.");
                    return vec![];
                }
                self.info(format!("Exporting to {path}…"));
                vec![Cmd::Export {
                    query: self.dash.query.clone(),
                    path: PathBuf::from(path),
                }]
            }
            _ => {
                input.edit(&key);
                vec![]
            }
        }
    }

    /// Without a lower bound the bucket was a guess (day); if the data spans less, ask again
    /// with the bucket that suits the data's own extent, for that extent.
    fn refine_timeline(&mut self) -> Vec<Cmd> {
        let Some(tl) = &self.dash.timeline else {
            return vec![];
        };
        if self.dash.query.from.is_some() || tl.points.is_empty() {
            return vec![];
        }
        let first = tl.points.iter().map(|p| p.t).min();
        let last = tl.points.iter().map(|p| p.t).max();
        let (Some(first), Some(last)) = (first, last) else {
            return vec![];
        };
        let Some(end) = last.checked_add_signed(chrono::Duration::milliseconds(tl.bucket.millis()))
        else {
            return vec![];
        };
        let better = shaping::choose_bucket(Some(first), Some(end), self.now);
        if better.millis() < tl.bucket.millis() {
            // The data's own extent bounds the request: the API answers minute buckets only
            // for a bounded range (at most 7 days; `choose_bucket` picks minutes for ≤ 6 h).
            let query = Query {
                from: Some(first),
                to: Some(end),
                ..self.dash.query.clone()
            };
            return vec![Cmd::Timeline {
                query,
                bucket: better,
                gen: self.dash.gen,
            }];
        }
        vec![]
    }

    pub(super) fn switch_tab(&mut self, tab: DashTab) -> Vec<Cmd> {
        self.dash.tab = tab;
        if tab == DashTab::Audit && self.dash.audit.is_empty() {
            return vec![Cmd::Audit {
                offset: self.dash.audit_offset,
            }];
        }
        vec![]
    }

    fn move_selection(&mut self, delta: i64) -> Vec<Cmd> {
        let (sel, n) = match self.dash.tab {
            DashTab::Sessions => (&mut self.dash.selected, self.dash.sessions.len()),
            DashTab::Audit => (&mut self.dash.audit_selected, self.dash.audit.len()),
            _ => return vec![],
        };
        *sel = match n {
            0 => 0,
            _ => (*sel as i64 + delta).clamp(0, n as i64 - 1) as usize,
        };
        vec![]
    }

    fn key_filter_form(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let form = &mut self.dash.form;
        let n = FILTER_FIELDS.len();
        match keys::action(&keys::FILTERS, &key) {
            Some(Action::Cancel) => form.open = false,
            Some(Action::NextField) => form.focus = (form.focus + 1) % n,
            Some(Action::PrevField) => form.focus = (form.focus + n - 1) % n,
            Some(a @ (Action::PickPrev | Action::PickNext)) => {
                self.pick_filter_value(a == Action::PickNext)
            }
            Some(Action::Submit) => match self.parse_filters() {
                Ok(q) => {
                    self.dash.form.open = false;
                    self.dash.query = q;
                    self.dash.selected = 0;
                    self.info("Filters applied.");
                    return self.load_dashboard();
                }
                Err(e) => self.error(e),
            },
            _ => {
                let f = form.focus;
                form.field_mut(f).edit(&key);
            }
        }
        vec![]
    }

    /// ← / → in the filter form: the previous or next agent, emotion or modality.
    fn pick_filter_value(&mut self, fwd: bool) {
        let form = &mut self.dash.form;
        match form.focus {
            0 => {
                let names: Vec<String> = self
                    .dash
                    .users
                    .iter()
                    .filter(|u| u.role == Role::Agent)
                    .map(|u| u.username.clone())
                    .collect();
                let cur = Some(form.agent.value.trim().to_string()).filter(|s| !s.is_empty());
                form.agent.value = shaping::cycle(&names, cur.as_ref(), fwd).unwrap_or_default();
            }
            3 => {
                let cur = form.emotion.value.parse::<Emotion>().ok();
                form.emotion.value = shaping::cycle(&Emotion::ALL, cur.as_ref(), fwd)
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default();
            }
            4 => {
                let cur = form.modality.value.parse::<Modality>().ok();
                form.modality.value = shaping::cycle(&Modality::ALL, cur.as_ref(), fwd)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default();
            }
            _ => {}
        }
    }

    /// Validates the filter form into a [`Query`].
    pub fn parse_filters(&self) -> Result<Query, String> {
        let f = &self.dash.form;
        let agent = Some(f.agent.value.trim().to_string()).filter(|s| !s.is_empty());
        let from = shaping::parse_time_input(&f.from.value, self.now, false, self.tz)
            .map_err(|e| format!("From: {e}"))?;
        let to = shaping::parse_time_input(&f.to.value, self.now, true, self.tz)
            .map_err(|e| format!("To: {e}"))?;
        if let (Some(a), Some(b)) = (from, to) {
            if a >= b {
                return Err("From must be before To.".into());
            }
        }
        let emotion = match f.emotion.value.trim() {
            "" | "any" | "*" => None,
            s => Some(s.parse::<Emotion>().map_err(|e| format!("Emotion: {e}"))?),
        };
        let modality = match f.modality.value.trim() {
            "" => None,
            s => Some(
                s.parse::<Modality>()
                    .map_err(|e| format!("Modality: {e}"))?,
            ),
        };
        Ok(Query {
            agent,
            from,
            to,
            emotion,
            modality,
        })
    }

    // ------------------------------------------------------- answers (generation already checked)

    pub(super) fn on_dashboard(&mut self, r: Result<Box<DashData>, ClientError>) -> Vec<Cmd> {
        let d = match r {
            Ok(d) => *d,
            Err(e) => return self.fail(e),
        };
        self.dash.distribution = Some(d.distribution);
        self.dash.timeline = Some(d.timeline);
        self.dash.sessions_total = d.sessions.total;
        self.dash.sessions = d.sessions.items;
        self.dash.selected = self
            .dash
            .selected
            .min(self.dash.sessions.len().saturating_sub(1));
        self.refine_timeline()
    }

    pub(super) fn on_timeline(&mut self, r: Result<Timeline, ClientError>) -> Vec<Cmd> {
        match r {
            Ok(t) => {
                self.dash.bucket = t.bucket;
                self.dash.timeline = Some(t);
                self.refine_timeline()
            }
            Err(e) => self.fail(e),
        }
    }

    pub(super) fn on_heatmap(&mut self, r: Result<Heatmap, ClientError>) -> Vec<Cmd> {
        match r {
            Ok(h) => {
                if h.kind == self.dash.heat_kind {
                    self.dash.heatmap = Some(h);
                }
                vec![]
            }
            Err(e) => self.fail(e),
        }
    }

    pub(super) fn on_users(&mut self, r: Result<Vec<User>, ClientError>) -> Vec<Cmd> {
        match r {
            Ok(u) => {
                self.dash.users = u;
                vec![]
            }
            // The user list only feeds the agent picker: not fatal.
            Err(e) if !e.is_unauthenticated() => vec![],
            Err(e) => self.fail(e),
        }
    }

    pub(super) fn on_audit(&mut self, r: Result<Page<AuditEntry>, ClientError>) -> Vec<Cmd> {
        match r {
            // A slow answer for a page the user has already left.
            Ok(p) if p.offset != self.dash.audit_offset => vec![],
            Ok(p) => {
                self.dash.audit_total = p.total;
                self.dash.audit = p.items;
                self.dash.audit_selected = self
                    .dash
                    .audit_selected
                    .min(self.dash.audit.len().saturating_sub(1));
                vec![]
            }
            Err(e) => self.fail(e),
        }
    }
}
