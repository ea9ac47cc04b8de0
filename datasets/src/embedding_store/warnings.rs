//! What [`super::validate_store`] warns about: a store that reads cleanly but that a
//! classifier cannot learn from, or whose folds or class names mislead.

use std::collections::BTreeMap;
use std::fmt;

use super::StoreInfo;

/// Items fewer than this in a group give a warning: that group's leave-one-group-out fold
/// validates on so few items that its accuracy moves in steps of more than 10 points, and the
/// mean over folds weighs it as much as a fold of a thousand items. (IEMOCAP's sessions hold
/// about a thousand utterances each.)
pub const SMALL_GROUP_ITEMS: usize = 10;

/// Small groups named at most in a [`StoreWarning::SmallGroups`] message.
const GROUPS_SHOWN: usize = 8;

/// Something [`super::validate_store`] found that does not stop the store being read, but
/// makes what is trained or reported on it doubtful.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StoreWarning {
    /// The store holds no item.
    NoItems,
    /// Every item has the same label.
    OneClass {
        /// The label.
        label: u32,
        /// Its class name.
        name: String,
    },
    /// Classes of the manifest that no item has (when at least two have items).
    EmptyClasses {
        /// Each class's label and name.
        classes: Vec<(u32, String)>,
    },
    /// Two class names are the same.
    DuplicateClassName {
        /// The name.
        name: String,
        /// The label of its first use.
        first: u32,
        /// The label of the repeat.
        again: u32,
    },
    /// A class name is empty or only white space.
    BlankClassName {
        /// Its label.
        label: u32,
    },
    /// Every item is in the same group: no leave-one-group-out fold can be made.
    OneGroup {
        /// The group.
        group: u32,
    },
    /// Groups with fewer than [`SMALL_GROUP_ITEMS`] items (when there are at least two).
    SmallGroups {
        /// Each such group and its number of items.
        groups: Vec<(u32, usize)>,
    },
    /// Keys of `manifest.json` no reader knows, ignored when the store is read: a misspelt
    /// `chunk_sample` would leave the store read with the default chunk length.
    UnknownKeys {
        /// Each key, with `shards[i].` before the keys of a shard entry.
        keys: Vec<String>,
    },
}

impl fmt::Display for StoreWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoItems => write!(f, "the store holds no item: nothing can train on it"),
            Self::OneClass { label, name } => write!(
                f,
                "every item has label {label} (`{name}`): a classifier has nothing to tell apart"
            ),
            Self::EmptyClasses { classes } => {
                // The first few: a small store of CIFAR-100 misses dozens.
                const SHOWN: usize = 8;
                let mut list: Vec<String> = classes
                    .iter()
                    .take(SHOWN)
                    .map(|(label, name)| format!("{label} (`{name}`)"))
                    .collect();
                if classes.len() > SHOWN {
                    list.push(format!("… ({} classes in all)", classes.len()));
                }
                write!(
                    f,
                    "no item has label {}: {} never trained on nor evaluated",
                    list.join(", "),
                    if classes.len() == 1 {
                        "that class is"
                    } else {
                        "those classes are"
                    }
                )
            }
            Self::DuplicateClassName { name, first, again } => write!(
                f,
                "classes {first} and {again} are both named `{name}`: the two cannot be told \
                 apart by name (rename one in manifest.json)"
            ),
            Self::BlankClassName { label } => write!(
                f,
                "class {label} has an empty name (name it in manifest.json)"
            ),
            Self::OneGroup { group } => write!(
                f,
                "every item is in group {group}: leave-one-group-out folds (IEMOCAP's \
                 sessions) need at least 2 groups"
            ),
            Self::UnknownKeys { keys } => write!(
                f,
                "manifest.json has key{} {} that no reader knows: {} ignored (misspelt, or \
                 written by a newer tool?)",
                if keys.len() == 1 { "" } else { "s" },
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if keys.len() == 1 { "it is" } else { "they are" }
            ),
            Self::SmallGroups { groups } => {
                let mut list: Vec<String> = groups
                    .iter()
                    .take(GROUPS_SHOWN)
                    .map(|(group, n)| {
                        format!("{group} ({n} item{})", if *n == 1 { "" } else { "s" })
                    })
                    .collect();
                if groups.len() > GROUPS_SHOWN {
                    list.push(format!("and {} more", groups.len() - GROUPS_SHOWN));
                }
                write!(
                    f,
                    "group{} {} {} fewer than {SMALL_GROUP_ITEMS} items: {} fold validates on \
                     so few that its accuracy moves in large steps, and the mean over folds \
                     weighs it like the others",
                    if groups.len() == 1 { "" } else { "s" },
                    list.join(", "),
                    if groups.len() == 1 { "has" } else { "have" },
                    if groups.len() == 1 {
                        "its"
                    } else {
                        "each one's"
                    },
                )
            }
        }
    }
}

/// Counts of a store's items by label and by group, as the validator reads them.
pub(crate) struct Tally {
    per_class: Vec<usize>,
    per_group: BTreeMap<u32, usize>,
    items: usize,
}

impl Tally {
    /// No item yet, `num_classes` classes.
    pub(crate) fn new(num_classes: usize) -> Self {
        Self {
            per_class: vec![0; num_classes],
            per_group: BTreeMap::new(),
            items: 0,
        }
    }

    /// Counts one item (a label out of range, itself a problem, counts for no class).
    pub(crate) fn add(&mut self, label: u32, group: u32) {
        if let Some(n) = self.per_class.get_mut(label as usize) {
            *n += 1;
        }
        *self.per_group.entry(group).or_default() += 1;
        self.items += 1;
    }

    /// The warnings for a store described by `info` with the items counted.
    ///
    /// The class names are always checked. The items only when `items_read` (every item was
    /// read: with a missing or unreadable shard the counts say nothing about the store). The
    /// groups only for a store whose split is not `train` or `test`: the seeded protocols
    /// (CIFAR-100, AG News) read those and use no groups (extraction puts all their items in
    /// group 0), while the leave-one-group-out folds read a store of every item (`all`).
    pub(crate) fn warnings(&self, info: &StoreInfo, items_read: bool) -> Vec<StoreWarning> {
        let mut warnings = Vec::new();
        for (k, name) in info.class_names.iter().enumerate() {
            if name.trim().is_empty() {
                warnings.push(StoreWarning::BlankClassName { label: k as u32 });
            } else if let Some(first) = info.class_names[..k].iter().position(|n| n == name) {
                warnings.push(StoreWarning::DuplicateClassName {
                    name: name.clone(),
                    first: first as u32,
                    again: k as u32,
                });
            }
        }
        if !items_read {
            return warnings;
        }
        if self.items == 0 {
            warnings.push(StoreWarning::NoItems);
            return warnings;
        }
        let class = |label: usize| (label as u32, info.class_names[label].clone());
        let present: Vec<usize> = (0..self.per_class.len())
            .filter(|&label| self.per_class[label] > 0)
            .collect();
        match present.as_slice() {
            [only] => {
                let (label, name) = class(*only);
                warnings.push(StoreWarning::OneClass { label, name });
            }
            _ if present.len() < self.per_class.len() => {
                warnings.push(StoreWarning::EmptyClasses {
                    classes: (0..self.per_class.len())
                        .filter(|&label| self.per_class[label] == 0)
                        .map(class)
                        .collect(),
                });
            }
            _ => {}
        }
        if info.split == "train" || info.split == "test" {
            return warnings;
        }
        if let [(&group, _)] = self.per_group.iter().collect::<Vec<_>>().as_slice() {
            warnings.push(StoreWarning::OneGroup { group });
        } else {
            let small: Vec<(u32, usize)> = self
                .per_group
                .iter()
                .filter(|(_, &n)| n < SMALL_GROUP_ITEMS)
                .map(|(&group, &n)| (group, n))
                .collect();
            if !small.is_empty() {
                warnings.push(StoreWarning::SmallGroups { groups: small });
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::info;
    use super::super::StoreDtype;
    use super::*;

    /// The warnings for items of `(label, group)` in a 3-class store of split `split`.
    fn warnings_of(items: &[(u32, u32)], split: &str, names: [&str; 3]) -> Vec<StoreWarning> {
        let mut info = info(StoreDtype::F32, 1, 2);
        info.split = split.to_owned();
        info.class_names = names.map(str::to_owned).to_vec();
        let mut tally = Tally::new(3);
        for &(label, group) in items {
            tally.add(label, group);
        }
        tally.warnings(&info, true)
    }

    const NAMES: [&str; 3] = ["a", "b", "c"];

    /// `n` items of each label in each of `groups` groups.
    fn even(n: usize, groups: u32) -> Vec<(u32, u32)> {
        (0..groups)
            .flat_map(|g| (0..3).flat_map(move |l| std::iter::repeat_n((l, g), n)))
            .collect()
    }

    #[test]
    fn a_balanced_store_has_no_warning() {
        assert_eq!(warnings_of(&even(4, 3), "all", NAMES), []);
    }

    #[test]
    fn empty_one_class_and_missing_classes_are_each_named() {
        assert_eq!(warnings_of(&[], "all", NAMES), [StoreWarning::NoItems]);
        assert_eq!(
            warnings_of(&[(1, 0); 30], "train", NAMES),
            [StoreWarning::OneClass {
                label: 1,
                name: "b".to_owned()
            }]
        );
        let two: Vec<(u32, u32)> = even(10, 2).into_iter().filter(|&(l, _)| l != 2).collect();
        let found = warnings_of(&two, "all", NAMES);
        assert_eq!(
            found,
            [StoreWarning::EmptyClasses {
                classes: vec![(2, "c".to_owned())]
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "no item has label 2 (`c`): that class is never trained on nor evaluated"
        );
        let many = StoreWarning::EmptyClasses {
            classes: (0..95).map(|c| (c, format!("class-{c}"))).collect(),
        };
        assert!(
            many.to_string()
                .contains("7 (`class-7`), … (95 classes in all): those classes are"),
            "{many}"
        );
    }

    #[test]
    fn one_group_and_small_groups_are_named_for_fold_stores_only() {
        let one = even(5, 1);
        assert_eq!(
            warnings_of(&one, "all", NAMES),
            [StoreWarning::OneGroup { group: 0 }]
        );
        let mut small = even(4, 3);
        small.push((0, 7));
        let found = warnings_of(&small, "all", NAMES);
        assert_eq!(
            found,
            [StoreWarning::SmallGroups {
                groups: vec![(7, 1)]
            }]
        );
        assert!(
            found[0]
                .to_string()
                .starts_with("group 7 (1 item) has fewer than 10 items: its fold"),
            "{}",
            found[0]
        );
        // The seeded protocols' stores use no groups.
        assert_eq!(warnings_of(&one, "train", NAMES), []);
        assert_eq!(warnings_of(&small, "test", NAMES), []);
    }

    #[test]
    fn repeated_and_blank_class_names_are_named() {
        assert_eq!(
            warnings_of(&even(4, 3), "all", ["a", " ", "a"]),
            [
                StoreWarning::BlankClassName { label: 1 },
                StoreWarning::DuplicateClassName {
                    name: "a".to_owned(),
                    first: 0,
                    again: 2
                }
            ]
        );
    }

    #[test]
    fn items_are_not_judged_when_some_could_not_be_read() {
        let mut info = info(StoreDtype::F32, 1, 2);
        info.split = "all".to_owned();
        assert_eq!(Tally::new(3).warnings(&info, false), []);
    }
}
