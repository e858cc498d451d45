//! Which series a count goes to: the user's bound on the size of the page. Labels the user
//! leaves out (`--metrics.without`) are summed over; once a family holds `max` label sets, a
//! new one is folded into the family's single `_other` series (its calls still counted, the
//! sum over the family still exact) and the folded label sets are counted.
use std::collections::HashSet;

use crate::learn::Place;

/// The label value of the series that takes what the limit folds.
pub const OTHER: &str = "_other";

/// How many label sets a family keeps by default: far above what one program learns (roles ×
/// phases × syscalls), enough for a hundred containers of one.
pub const DEFAULT_MAX_SERIES: usize = 20_000;

/// A label of the per-call families that can be left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    Container,
    Role,
    Phase,
}

impl Label {
    /// Its name on the page.
    pub fn name(self) -> &'static str {
        match self {
            Label::Container => "container_id",
            Label::Role => "role",
            Label::Phase => "phase",
        }
    }

    /// The label named `name`, if it is one that can be left out.
    pub fn parse(name: &str) -> Option<Label> {
        [Label::Container, Label::Role, Label::Phase]
            .into_iter()
            .find(|l| l.name() == name)
    }
}

/// The user's bound on the per-call families (calls, failed calls, violations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Labels summed over (shown empty).
    pub without: Vec<Label>,
    /// Label sets kept per family before new ones fold into `_other`.
    pub max: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            without: Vec::new(),
            max: DEFAULT_MAX_SERIES,
        }
    }
}

impl SeriesLimits {
    /// `place` with the labels left out emptied.
    pub fn place(&self, place: &Place) -> Place {
        let keep = |l: Label, v: &str| {
            if self.without.contains(&l) {
                String::new()
            } else {
                v.to_string()
            }
        };
        Place {
            container: keep(Label::Container, &place.container),
            role: keep(Label::Role, &place.role),
            phase: keep(Label::Phase, &place.phase),
        }
    }
}

/// The label sets one family has shown, and those it folded.
#[derive(Debug, Default)]
pub(super) struct Series {
    limits: SeriesLimits,
    kept: HashSet<(Place, String)>,
    folded: HashSet<(Place, String)>,
}

impl Series {
    pub(super) fn new(limits: SeriesLimits) -> Series {
        Series {
            limits,
            kept: HashSet::new(),
            folded: HashSet::new(),
        }
    }

    /// The series that counts `syscall`'s calls at `place`.
    pub(super) fn of(&mut self, place: &Place, syscall: &str) -> (Place, String) {
        let key = (self.limits.place(place), syscall.to_string());
        if self.kept.contains(&key) {
            return key;
        }
        if self.kept.len() < self.limits.max {
            self.kept.insert(key.clone());
            return key;
        }
        self.folded.insert(key);
        let other = Place {
            container: OTHER.into(),
            role: OTHER.into(),
            phase: OTHER.into(),
        };
        (other, OTHER.into())
    }

    /// `place` as the family's phase gauge shows it.
    pub(super) fn place(&self, place: &Place) -> Place {
        self.limits.place(place)
    }

    /// How many label sets were folded into `_other`.
    pub(super) fn folded(&self) -> usize {
        self.folded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(container: &str, role: &str, phase: &str) -> Place {
        Place {
            container: container.into(),
            role: role.into(),
            phase: phase.into(),
        }
    }

    #[test]
    fn labels_left_out_are_summed_over() {
        let mut s = Series::new(SeriesLimits {
            without: vec![Label::Container],
            max: 10,
        });
        let a = s.of(&at("aaa", "worker", "serving"), "read");
        let b = s.of(&at("bbb", "worker", "serving"), "read");
        assert_eq!(a, b);
        assert_eq!(a, (at("", "worker", "serving"), "read".into()));
        assert_eq!(s.folded(), 0);
    }

    #[test]
    fn past_the_limit_new_label_sets_fold_and_old_ones_stay() {
        let mut s = Series::new(SeriesLimits {
            without: Vec::new(),
            max: 2,
        });
        let first = s.of(&at("", "r", "p"), "read");
        s.of(&at("", "r", "p"), "write");
        let third = s.of(&at("", "r", "p"), "close");
        assert_eq!(third, (at(OTHER, OTHER, OTHER), OTHER.into()));
        s.of(&at("", "r", "q"), "close");
        assert_eq!(s.folded(), 2);
        assert_eq!(s.of(&at("", "r", "p"), "read"), first, "kept ones stay");
    }

    #[test]
    fn only_these_labels_can_be_left_out() {
        assert_eq!(Label::parse("container_id"), Some(Label::Container));
        assert_eq!(Label::parse("phase"), Some(Label::Phase));
        assert_eq!(Label::parse("syscall"), None);
        assert_eq!(Label::parse("program"), None);
    }
}
