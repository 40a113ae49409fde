//! Watches: who is told about which change, as Apache ZooKeeper's `WatchManager` and
//! `DataTree` decide it. Pure: it stores watcher ids (`W`, e.g. a connection id) and
//! turns the tree's [`WatchEvent`]s into [`Notification`]s; sending them is the
//! caller's job.
//!
//! Contract:
//! - Two tables, as in ZooKeeper. The data table holds getData/exists watches
//!   (one-shot, "standard"), persistent and persistent-recursive watches; the child
//!   table holds getChildren watches (one-shot) and persistent watches.
//! - `NodeCreated`/`NodeDataChanged` fire the data table; `NodeChildrenChanged` the
//!   child table; `NodeDeleted` the data table and then the child table, skipping
//!   watchers already told. At the event's path every watch fires and one-shot ones
//!   are removed; at its ancestors only persistent-recursive watches fire (so those
//!   never see `NodeChildrenChanged`). A watcher gets at most one notification per
//!   table per event, and notifications come out ordered by watcher id.
//! - [`WatchManager::set_watches`] re-registers a reconnecting client's watches,
//!   firing at once for changes it missed since `relative_zxid`.
//! - [`WatchManager::len`] counts both tables (ZooKeeper's `zk_watch_count`);
//!   [`WatchManager::data_summary`] and [`WatchManager::data_watches`] only the
//!   data table (ZooKeeper's `wchs`, `wchc` and `wchp`).

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::{AddWatchMode, EventType, SetWatches2, WatcherType};
use crate::tree::{DataTree, WatchEvent};

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// A notification to deliver: `watcher` should receive `event_type` for `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<W> {
    pub watcher: W,
    pub event_type: EventType,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Table<W: Ord> {
    paths: BTreeMap<String, BTreeMap<W, u8>>,
}

impl<W: Ord + Clone> Table<W> {
    fn new() -> Self {
        Self {
            paths: BTreeMap::new(),
        }
    }

    fn add(&mut self, path: &str, watcher: W, mode: u8) {
        *self
            .paths
            .entry(path.to_owned())
            .or_default()
            .entry(watcher)
            .or_default() |= mode;
    }

    /// `mode` 0 means any mode.
    fn contains(&self, path: &str, watcher: &W, mode: u8) -> bool {
        self.paths
            .get(path)
            .and_then(|ws| ws.get(watcher))
            .is_some_and(|m| mode == 0 || m & mode != 0)
    }

    /// Removes `mode` (0: every mode); true if something was removed.
    fn remove(&mut self, path: &str, watcher: &W, mode: u8) -> bool {
        let Some(watchers) = self.paths.get_mut(path) else {
            return false;
        };
        let Some(modes) = watchers.get_mut(watcher) else {
            return false;
        };
        let mask = if mode == 0 { u8::MAX } else { mode };
        let removed = *modes & mask != 0;
        *modes &= !mask;
        if *modes == 0 {
            watchers.remove(watcher);
        }
        if watchers.is_empty() {
            self.paths.remove(path);
        }
        removed
    }

    fn remove_watcher(&mut self, watcher: &W) {
        self.paths.retain(|_, ws| {
            ws.remove(watcher);
            !ws.is_empty()
        });
    }

    fn trigger(&mut self, path: &str) -> BTreeSet<W> {
        let mut fired = BTreeSet::new();
        if let Some(watchers) = self.paths.get_mut(path) {
            fired.extend(watchers.keys().cloned());
            watchers.retain(|_, modes| {
                *modes &= !STANDARD;
                *modes != 0
            });
            if watchers.is_empty() {
                self.paths.remove(path);
            }
        }
        let mut ancestor = path;
        while let Some((parent, _)) = crate::tree::path::split_parent(ancestor) {
            if let Some(watchers) = self.paths.get(parent) {
                fired.extend(
                    watchers
                        .iter()
                        .filter(|(_, m)| **m & RECURSIVE != 0)
                        .map(|(w, _)| w.clone()),
                );
            }
            ancestor = parent;
        }
        fired
    }

    fn len(&self) -> usize {
        self.paths.values().map(BTreeMap::len).sum()
    }
}

/// The watch tables of one member. See the module contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchManager<W: Ord> {
    data: Table<W>,
    child: Table<W>,
}

impl<W: Ord + Clone> Default for WatchManager<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Ord + Clone> WatchManager<W> {
    pub fn new() -> Self {
        Self {
            data: Table::new(),
            child: Table::new(),
        }
    }

    /// getData or exists with `watch` set (kept even if the node does not exist).
    pub fn add_data_watch(&mut self, path: &str, watcher: W) {
        self.data.add(path, watcher, STANDARD);
    }

    /// getChildren/getChildren2 with `watch` set.
    pub fn add_child_watch(&mut self, path: &str, watcher: W) {
        self.child.add(path, watcher, STANDARD);
    }

    /// addWatch: persistent watches go to both tables, recursive ones to the data table.
    pub fn add_watch(&mut self, path: &str, watcher: W, mode: AddWatchMode) {
        match mode {
            AddWatchMode::Persistent => {
                self.child.add(path, watcher.clone(), PERSISTENT);
                self.data.add(path, watcher, PERSISTENT);
            }
            AddWatchMode::PersistentRecursive => self.data.add(path, watcher, RECURSIVE),
        }
    }

    /// checkWatches (`DataTree.containsWatcher`).
    pub fn contains(&self, path: &str, kind: WatcherType, watcher: &W) -> bool {
        match kind {
            WatcherType::Children => self.child.contains(path, watcher, STANDARD),
            WatcherType::Data => self.data.contains(path, watcher, STANDARD),
            WatcherType::Persistent => self.data.contains(path, watcher, PERSISTENT),
            WatcherType::PersistentRecursive => self.data.contains(path, watcher, RECURSIVE),
            WatcherType::Any => {
                self.child.contains(path, watcher, 0) || self.data.contains(path, watcher, 0)
            }
        }
    }

    /// removeWatches (`DataTree.removeWatch`); false means `NoWatcher`.
    pub fn remove(&mut self, path: &str, kind: WatcherType, watcher: &W) -> bool {
        match kind {
            WatcherType::Children => self.child.remove(path, watcher, STANDARD),
            WatcherType::Data => self.data.remove(path, watcher, STANDARD),
            WatcherType::Persistent => {
                let c = self.child.remove(path, watcher, PERSISTENT);
                let d = self.data.remove(path, watcher, PERSISTENT);
                c || d
            }
            WatcherType::PersistentRecursive => self.data.remove(path, watcher, RECURSIVE),
            WatcherType::Any => {
                let c = self.child.remove(path, watcher, 0);
                let d = self.data.remove(path, watcher, 0);
                c || d
            }
        }
    }

    /// Drops every watch of a watcher (its connection closed).
    pub fn remove_watcher(&mut self, watcher: &W) {
        self.data.remove_watcher(watcher);
        self.child.remove_watcher(watcher);
    }

    /// Number of (path, watcher) registrations, data and child tables together.
    pub fn len(&self) -> usize {
        self.data.len() + self.child.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The notifications one tree event causes; one-shot watches are consumed.
    pub fn trigger(&mut self, event: &WatchEvent) -> Vec<Notification<W>> {
        let notify = |ws: BTreeSet<W>| {
            ws.into_iter().map(|watcher| Notification {
                watcher,
                event_type: event.event_type,
                path: event.path.clone(),
            })
        };
        match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                notify(self.data.trigger(&event.path)).collect()
            }
            EventType::NodeChildrenChanged => notify(self.child.trigger(&event.path)).collect(),
            EventType::NodeDeleted => {
                let told = self.data.trigger(&event.path);
                let mut children = self.child.trigger(&event.path);
                children.retain(|w| !told.contains(w));
                notify(told).chain(notify(children)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// setWatches/setWatches2 for `watcher` after a reconnect (`DataTree.setWatches`).
    pub fn set_watches(
        &mut self,
        tree: &DataTree,
        request: &SetWatches2,
        watcher: W,
    ) -> Vec<Notification<W>> {
        let mut now = Vec::new();
        let mut fire = |event_type, path: &str| {
            now.push(Notification {
                watcher: watcher.clone(),
                event_type,
                path: path.to_owned(),
            })
        };
        let since = request.relative_zxid;
        for path in &request.data_watches {
            match tree.node(path) {
                None => fire(EventType::NodeDeleted, path),
                Some(n) if n.stat.mzxid > since => fire(EventType::NodeDataChanged, path),
                Some(_) => self.data.add(path, watcher.clone(), STANDARD),
            }
        }
        for path in &request.exist_watches {
            match tree.node(path) {
                Some(_) => fire(EventType::NodeCreated, path),
                None => self.data.add(path, watcher.clone(), STANDARD),
            }
        }
        for path in &request.child_watches {
            match tree.node(path) {
                None => fire(EventType::NodeDeleted, path),
                Some(n) if n.stat.pzxid > since => fire(EventType::NodeChildrenChanged, path),
                Some(_) => self.child.add(path, watcher.clone(), STANDARD),
            }
        }
        for path in &request.persistent_watches {
            self.add_watch(path, watcher.clone(), AddWatchMode::Persistent);
        }
        for path in &request.persistent_recursive_watches {
            self.add_watch(path, watcher.clone(), AddWatchMode::PersistentRecursive);
        }
        now
    }

    /// Every (path, watcher) pair of the data table, by path then watcher:
    /// ZooKeeper's `wchc` and `wchp` list these, and not the child table.
    pub fn data_watches(&self) -> impl Iterator<Item = (&str, &W)> {
        self.data
            .paths
            .iter()
            .flat_map(|(path, ws)| ws.keys().map(move |w| (path.as_str(), w)))
    }

    /// ZooKeeper's `wchs` figures, which it takes from the data table only (child
    /// watches are not in them): watchers, watched paths and (path, watcher) pairs.
    pub fn data_summary(&self) -> WatchSummary {
        let watchers: BTreeSet<&W> = self.data.paths.values().flat_map(BTreeMap::keys).collect();
        WatchSummary {
            watchers: watchers.len(),
            paths: self.data.paths.len(),
            watches: self.data.len(),
        }
    }
}

/// See [`WatchManager::data_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSummary {
    pub watchers: usize,
    pub paths: usize,
    pub watches: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: EventType, path: &str) -> WatchEvent {
        WatchEvent::new(event_type, path)
    }

    fn who(ns: &[Notification<u32>]) -> Vec<(u32, EventType)> {
        ns.iter().map(|n| (n.watcher, n.event_type)).collect()
    }

    #[test]
    fn the_summary_counts_the_data_table_as_zookeeper_does() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_data_watch("/a", 2);
        m.add_data_watch("/b", 1);
        m.add_child_watch("/c", 3);
        let summary = m.data_summary();
        assert_eq!(
            (summary.watchers, summary.paths, summary.watches),
            (2, 2, 3)
        );
        assert_eq!(m.len(), 4);
        let pairs: Vec<(&str, u32)> = m.data_watches().map(|(p, w)| (p, *w)).collect();
        assert_eq!(pairs, [("/a", 1), ("/a", 2), ("/b", 1)]);
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_child_watch("/a", 2);
        assert_eq!(
            who(&m.trigger(&ev(EventType::NodeDataChanged, "/a"))),
            [(1, EventType::NodeDataChanged)]
        );
        assert!(m.trigger(&ev(EventType::NodeDataChanged, "/a")).is_empty());
        assert_eq!(
            who(&m.trigger(&ev(EventType::NodeChildrenChanged, "/a"))),
            [(2, EventType::NodeChildrenChanged)]
        );
        assert!(m.is_empty());
    }

    #[test]
    fn delete_fires_data_then_child_watchers_once_each() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        m.add_child_watch("/a", 1);
        m.add_child_watch("/a", 2);
        let ns = m.trigger(&ev(EventType::NodeDeleted, "/a"));
        assert_eq!(
            who(&ns),
            [(1, EventType::NodeDeleted), (2, EventType::NodeDeleted)]
        );
        assert!(m.is_empty());
    }

    #[test]
    fn persistent_and_recursive() {
        let mut m = WatchManager::new();
        m.add_watch("/a", 1, AddWatchMode::Persistent);
        m.add_watch("/a", 2, AddWatchMode::PersistentRecursive);
        for _ in 0..2 {
            assert_eq!(
                who(&m.trigger(&ev(EventType::NodeDataChanged, "/a"))),
                [
                    (1, EventType::NodeDataChanged),
                    (2, EventType::NodeDataChanged)
                ]
            );
        }
        // Descendants reach recursive watchers only, with the changed node's path.
        let ns = m.trigger(&ev(EventType::NodeCreated, "/a/b/c"));
        assert_eq!(who(&ns), [(2, EventType::NodeCreated)]);
        assert_eq!(ns[0].path, "/a/b/c");
        // Recursive watches never see NodeChildrenChanged.
        assert_eq!(
            who(&m.trigger(&ev(EventType::NodeChildrenChanged, "/a"))),
            [(1, EventType::NodeChildrenChanged)]
        );
        assert!(m.contains("/a", WatcherType::Persistent, &1));
        assert!(m.remove("/a", WatcherType::Persistent, &1));
        assert!(!m.remove("/a", WatcherType::Persistent, &1));
        assert!(m.remove("/a", WatcherType::Any, &2));
        assert!(m.is_empty());
    }

    #[test]
    fn root_recursive_sees_everything() {
        let mut m = WatchManager::new();
        m.add_watch("/", 9, AddWatchMode::PersistentRecursive);
        assert_eq!(m.trigger(&ev(EventType::NodeDeleted, "/x")).len(), 1);
        assert_eq!(m.trigger(&ev(EventType::NodeCreated, "/")).len(), 1);
    }

    #[test]
    fn check_and_remove_by_type() {
        let mut m = WatchManager::new();
        m.add_data_watch("/a", 1);
        assert!(m.contains("/a", WatcherType::Data, &1));
        assert!(!m.contains("/a", WatcherType::Children, &1));
        assert!(m.contains("/a", WatcherType::Any, &1));
        assert!(!m.remove("/a", WatcherType::Children, &1));
        m.add_child_watch("/b", 1);
        m.remove_watcher(&1);
        assert!(m.is_empty());
    }

    #[test]
    fn set_watches_fires_missed_changes() {
        use crate::protocol::Acl;
        use crate::tree::{CreateKind, Origin, Txn};
        let mut tree = DataTree::default();
        let create = |path: &str| Txn::Create {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            kind: CreateKind::Regular,
            ttl: None,
        };
        tree.apply(1, 0, &Origin::system(), &create("/old"));
        tree.apply(5, 0, &Origin::system(), &create("/new"));
        let request = SetWatches2 {
            relative_zxid: 2,
            data_watches: vec!["/old".into(), "/new".into(), "/gone".into()],
            exist_watches: vec!["/old".into(), "/absent".into()],
            child_watches: vec!["/old".into(), "/".into()],
            persistent_watches: vec!["/p".into()],
            persistent_recursive_watches: vec!["/r".into()],
        };
        let mut m = WatchManager::new();
        let now = m.set_watches(&tree, &request, 7u32);
        let fired: Vec<(EventType, &str)> = now
            .iter()
            .map(|n| (n.event_type, n.path.as_str()))
            .collect();
        assert_eq!(
            fired,
            [
                (EventType::NodeDataChanged, "/new"),
                (EventType::NodeDeleted, "/gone"),
                (EventType::NodeCreated, "/old"),
                (EventType::NodeChildrenChanged, "/"),
            ]
        );
        assert!(m.contains("/old", WatcherType::Data, &7));
        assert!(m.contains("/absent", WatcherType::Data, &7));
        assert!(m.contains("/old", WatcherType::Children, &7));
        assert!(m.contains("/p", WatcherType::Persistent, &7));
        assert!(m.contains("/r", WatcherType::PersistentRecursive, &7));
    }
}
