//! Export cells: whatever a contact holds, no cell of the CSV starts a spreadsheet formula.

use proptest::prelude::*;

use super::{config, nasty_text};
use crate::contacts::export::escape_formula;

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn no_cell_starts_a_formula(cell in prop_oneof![
        nasty_text(),
        (prop_oneof![Just('='), Just('+'), Just('-'), Just('@'), Just('\t'), Just('\r')], nasty_text())
            .prop_map(|(c, rest)| format!("{c}{rest}")),
    ]) {
        let escaped = escape_formula(&cell);
        prop_assert!(!escaped.starts_with(FORMULA_STARTS), "{:?} -> {:?}", cell, escaped);
        // Only a leading quote is ever added; the value is otherwise untouched.
        if escaped != cell {
            prop_assert_eq!(escaped.as_ref(), format!("'{cell}"));
        }
    }
}
