//! SMS text encoding and segment counting: which alphabet a text is sent in (GSM-7 or UCS-2),
//! how many units it takes, and how it splits into the segments a network bills for.

use serde::Serialize;

/// The GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1), indexed by septet value.
///
/// 0x1B is ESC, the escape to the extension table, not a character of its own; it is kept here
/// so that every entry sits at its code, and [`gsm7_septets`] refuses it.
const GSM7_BASIC: [char; 128] = [
    // 0x00
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    // 0x10
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ESC, 'Æ', 'æ', 'ß', 'É',
    // 0x20
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    // 0x40
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    // 0x60
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The escape septet (0x1B) that announces an extension-table character.
const ESC: char = '\u{1b}';

/// The GSM 7-bit default alphabet extension table (3GPP TS 23.038 §6.2.1.1): (code, character).
///
/// Each is sent as ESC followed by its code, so it takes two septets. Codes the standard leaves
/// undefined or reserved (0x0D, 0x1B) are not listed: they have no character to match.
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{c}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Septets in one GSM-7 message that fits a single SMS.
const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 message (7 septets go to the UDH).
const GSM7_MULTI: usize = 153;
/// UTF-16 code units in one UCS-2 message that fits a single SMS.
const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message (3 units go to the UDH).
const UCS2_MULTI: usize = 67;

/// The alphabet a message is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    /// The name used in APIs and logs: `gsm7` or `ucs2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Units that fit when the whole text is one SMS.
    fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE,
            Encoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units that fit in each part of a concatenated SMS.
    fn multi_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_MULTI,
            Encoding::Ucs2 => UCS2_MULTI,
        }
    }

    /// Units `c` takes in this encoding; the caller has checked that GSM-7 can carry it.
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => gsm7_septets(c).unwrap_or(2),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

/// How a text goes out as SMS: its encoding, size, and the segments it takes.
///
/// The empty text counts as one segment with 0 units, because sending it still sends one SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SmsInfo {
    /// The alphabet the text is sent in.
    pub encoding: Encoding,
    /// Size of the text: septets for GSM-7 (extension characters count 2), UTF-16 code units
    /// for UCS-2 (characters outside the BMP count 2).
    pub units: usize,
    /// Number of SMS the text is sent as; at least 1.
    pub segments: usize,
    /// Units each segment holds: 160 or 153 for GSM-7, 70 or 67 for UCS-2.
    pub per_segment: usize,
    /// Units still free in the last segment.
    pub remaining: usize,
}

/// Septets each ASCII character takes in GSM-7 (0: not carried), built from the tables: a
/// broadcast analyses a million texts, and most of their characters are ASCII.
const ASCII_SEPTETS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < GSM7_BASIC.len() {
        let c = GSM7_BASIC[i] as u32;
        if c < 128 {
            table[c as usize] = 1;
        }
        i += 1;
    }
    let mut i = 0;
    while i < GSM7_EXTENSION.len() {
        let c = GSM7_EXTENSION[i].1 as u32;
        if c < 128 {
            table[c as usize] = 2;
        }
        i += 1;
    }
    // A bare ESC would be read as the start of an extension character, so it is not text.
    table[ESC as usize] = 0;
    table
};

/// Septets `c` takes in GSM-7: 1 for the basic table, 2 for the extension table, `None` if
/// GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<usize> {
    if c.is_ascii() {
        return match ASCII_SEPTETS[c as usize] {
            0 => None,
            n => Some(n as usize),
        };
    }
    // A bare ESC would be read as the start of an extension character, so it is not text.
    if c == ESC {
        return None;
    }
    if GSM7_BASIC.contains(&c) {
        Some(1)
    } else if GSM7_EXTENSION.iter().any(|&(_, e)| e == c) {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` is in the GSM-7 basic or extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// Where `text` splits into segments, without building the parts.
struct Layout {
    encoding: Encoding,
    units: usize,
    per_segment: usize,
    /// Byte offsets where a new segment starts, after the first.
    cuts: Vec<usize>,
    /// Units used by the last segment.
    last: usize,
}

/// Lays `text` out in segments, filling each one before starting the next.
///
/// A character never straddles two segments: an extension character's ESC pair and a UTF-16
/// surrogate pair must arrive in one piece, so a 2-unit character that does not fit moves whole
/// to the next segment (leaving e.g. 152 of 153 septets used). Filling greedily gives the fewest
/// segments, since every character takes 1 or 2 units and order is fixed.
fn layout(text: &str) -> Layout {
    let encoding = if is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    };
    let units: usize = text.chars().map(|c| encoding.units(c)).sum();
    if units <= encoding.single_limit() {
        return Layout {
            encoding,
            units,
            per_segment: encoding.single_limit(),
            cuts: Vec::new(),
            last: units,
        };
    }
    let per_segment = encoding.multi_limit();
    let mut cuts = Vec::new();
    let mut used = 0;
    for (at, c) in text.char_indices() {
        let size = encoding.units(c);
        if used + size > per_segment {
            cuts.push(at);
            used = 0;
        }
        used += size;
    }
    Layout {
        encoding,
        units,
        per_segment,
        cuts,
        last: used,
    }
}

/// Encoding, size and segment count of `text` as it would be sent.
pub fn analyse(text: &str) -> SmsInfo {
    let layout = layout(text);
    SmsInfo {
        encoding: layout.encoding,
        units: layout.units,
        segments: layout.cuts.len() + 1,
        per_segment: layout.per_segment,
        remaining: layout.per_segment - layout.last,
    }
}

/// The parts `text` is sent as, in order; their concatenation is `text`, and there are as many
/// as [`analyse`] counts segments (the empty text is one empty part).
pub fn split(text: &str) -> Vec<String> {
    let layout = layout(text);
    let mut parts = Vec::with_capacity(layout.cuts.len() + 1);
    let mut start = 0;
    for &cut in &layout.cuts {
        parts.push(text[start..cut].to_string());
        start = cut;
    }
    parts.push(text[start..].to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The basic table as printed in the standard, written out separately from `GSM7_BASIC`
    /// (without ESC) so the tests check the table rather than restate it.
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    /// The extension table's characters, each two septets.
    const EXTENSION: &str = "\u{c}^{}\\[~]|€";

    /// Units of `c` in `encoding`, counted independently of the module.
    fn units_of(c: char, encoding: Encoding) -> usize {
        match encoding {
            Encoding::Gsm7 if EXTENSION.contains(c) => 2,
            Encoding::Gsm7 => 1,
            Encoding::Ucs2 => c.encode_utf16(&mut [0; 2]).len(),
        }
    }

    fn units(text: &str, encoding: Encoding) -> usize {
        text.chars().map(|c| units_of(c, encoding)).sum()
    }

    fn in_tables(c: char) -> bool {
        BASIC.contains(c) || EXTENSION.contains(c)
    }

    fn info(encoding: Encoding, units: usize, segments: usize, per_segment: usize) -> SmsInfo {
        let last = units - (segments - 1) * per_segment;
        SmsInfo {
            encoding,
            units,
            segments,
            per_segment,
            remaining: per_segment - last,
        }
    }

    fn part_units(text: &str) -> Vec<usize> {
        let encoding = analyse(text).encoding;
        split(text).iter().map(|p| units(p, encoding)).collect()
    }

    #[test]
    fn basic_table_matches_the_standard() {
        let listed: Vec<char> = GSM7_BASIC.iter().copied().filter(|&c| c != ESC).collect();
        assert_eq!(listed, BASIC.chars().collect::<Vec<_>>());
        assert_eq!(GSM7_BASIC[0x00], '@');
        assert_eq!(GSM7_BASIC[0x09], 'Ç');
        assert_eq!(GSM7_BASIC[0x0A], '\n');
        assert_eq!(GSM7_BASIC[0x1B], ESC);
        assert_eq!(GSM7_BASIC[0x24], '¤');
        assert_eq!(GSM7_BASIC[0x40], '¡');
        assert_eq!(GSM7_BASIC[0x60], '¿');
        assert_eq!(GSM7_BASIC[0x7F], 'à');
        let mut sorted = GSM7_BASIC.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 128);
    }

    #[test]
    fn table_membership() {
        assert!(is_gsm7("é"));
        assert!(is_gsm7("Ç"));
        assert!(!is_gsm7("ç"));
        assert!(!is_gsm7("`"));
        assert!(!is_gsm7("\t"));
        assert!(!is_gsm7("\u{1b}"));
        assert!(is_gsm7(EXTENSION));
        assert_eq!(analyse(EXTENSION).units, 20);
        assert!(is_gsm7(""));
    }

    #[test]
    fn empty_text_is_one_empty_segment() {
        assert_eq!(analyse(""), info(Encoding::Gsm7, 0, 1, 160));
        assert_eq!(split(""), vec![String::new()]);
    }

    #[test]
    fn gsm7_segment_boundaries() {
        let a = |n| "a".repeat(n);
        assert_eq!(analyse(&a(160)), info(Encoding::Gsm7, 160, 1, 160));
        assert_eq!(analyse(&a(161)), info(Encoding::Gsm7, 161, 2, 153));
        assert_eq!(part_units(&a(161)), [153, 8]);
        assert_eq!(analyse(&a(306)), info(Encoding::Gsm7, 306, 2, 153));
        assert_eq!(analyse(&a(307)), info(Encoding::Gsm7, 307, 3, 153));
        assert_eq!(part_units(&a(307)), [153, 153, 1]);
    }

    #[test]
    fn three_hundred_gsm_chars_are_two_segments() {
        let text = "Tukusaba okujja ku ddwaliro. ".repeat(11);
        let text = &text[..300];
        assert_eq!(analyse(text), info(Encoding::Gsm7, 300, 2, 153));
        assert_eq!(part_units(text), [153, 147]);
    }

    #[test]
    fn ucs2_segment_boundaries() {
        let d = |n| "д".repeat(n);
        assert_eq!(analyse(&d(70)), info(Encoding::Ucs2, 70, 1, 70));
        assert_eq!(analyse(&d(71)), info(Encoding::Ucs2, 71, 2, 67));
        assert_eq!(part_units(&d(71)), [67, 4]);
        assert_eq!(analyse(&d(134)).segments, 2);
        assert_eq!(analyse(&d(135)).segments, 3);
    }

    #[test]
    fn euro_counts_two_septets() {
        assert_eq!(analyse("€"), info(Encoding::Gsm7, 2, 1, 160));
        assert_eq!(analyse(&"€".repeat(80)), info(Encoding::Gsm7, 160, 1, 160));
        let over = "€".repeat(81);
        let sms = analyse(&over);
        assert_eq!(
            (sms.encoding, sms.units, sms.segments),
            (Encoding::Gsm7, 162, 2)
        );
        // 76 euros fill 152 septets; the 77th would straddle the boundary.
        assert_eq!(part_units(&over), [152, 10]);
        assert_eq!(sms.remaining, 153 - 10);
    }

    #[test]
    fn extension_char_at_boundary_moves_to_next_segment() {
        // 152 plain septets, then '[' would take septets 153 and 154.
        let text = format!("{}[{}", "a".repeat(152), "b".repeat(10));
        assert_eq!(analyse(&text).units, 164);
        let parts = split(&text);
        assert_eq!(parts, vec!["a".repeat(152), format!("[{}", "b".repeat(10))]);
        assert_eq!(part_units(&text), [152, 12]);
        assert_eq!(analyse(&text).remaining, 153 - 12);
        // With one fewer plain char the pair fits exactly in septets 152 and 153.
        let text = format!("{}[{}", "a".repeat(151), "b".repeat(10));
        assert_eq!(part_units(&text), [153, 10]);
    }

    #[test]
    fn surrogate_pair_at_boundary_moves_to_next_segment() {
        let text = format!("{}😀{}", "д".repeat(66), "д".repeat(10));
        assert_eq!(analyse(&text).units, 78);
        assert_eq!(
            split(&text),
            vec!["д".repeat(66), format!("😀{}", "д".repeat(10))]
        );
        assert_eq!(part_units(&text), [66, 12]);
    }

    #[test]
    fn emoji_forces_ucs2_and_counts_two_units() {
        let sms = analyse("Habari yako? 😀");
        assert_eq!(sms, info(Encoding::Ucs2, 15, 1, 70));
        assert_eq!(analyse("😀").units, 2);
    }

    #[test]
    fn lowercase_c_cedilla_forces_ucs2() {
        assert_eq!(analyse("Mwana wa ç"), info(Encoding::Ucs2, 10, 1, 70));
        assert_eq!(analyse("Mwana wa Ç").encoding, Encoding::Gsm7);
    }

    #[test]
    fn ascii_luganda_and_acholi_are_gsm7() {
        let luganda = "Gyebale ko! Olunaku lw'okukebera lwa Balaza, essaawa 3 ez'okumakya.";
        let acholi = "Itye nining? Bin i ot yat i Ceng Abic (Friday) cawa 9 me odiko.";
        for text in [luganda, acholi] {
            let sms = analyse(text);
            assert_eq!(sms.encoding, Encoding::Gsm7, "{text}");
            assert_eq!(sms.units, text.len());
            assert_eq!(sms.segments, 1);
        }
    }

    #[test]
    fn encoding_names() {
        assert_eq!(Encoding::Gsm7.as_str(), "gsm7");
        assert_eq!(Encoding::Ucs2.as_str(), "ucs2");
        assert_eq!(serde_json::to_string(&Encoding::Ucs2).unwrap(), "\"ucs2\"");
    }

    /// Characters of the GSM-7 tables, with extension characters common enough to land on
    /// segment boundaries.
    fn gsm_char() -> impl Strategy<Value = char> {
        let basic: Vec<char> = BASIC.chars().collect();
        let extension: Vec<char> = EXTENSION.chars().collect();
        prop_oneof![
            3 => prop::sample::select(basic),
            1 => prop::sample::select(extension),
        ]
    }

    fn gsm_text() -> impl Strategy<Value = String> {
        prop::collection::vec(gsm_char(), 0..500).prop_map(|cs| cs.into_iter().collect())
    }

    /// Mostly GSM text with arbitrary characters mixed in, so UCS-2 texts run long and carry
    /// surrogate pairs across boundaries.
    fn mixed_text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            4 => gsm_char(),
            1 => any::<char>(),
            1 => prop::char::range('\u{1F600}', '\u{1F64F}'),
        ];
        prop::collection::vec(c, 0..300).prop_map(|cs| cs.into_iter().collect())
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![gsm_text(), mixed_text(), any::<String>()]
    }

    proptest! {
        #[test]
        fn split_concatenates_back(text in any_text()) {
            prop_assert_eq!(split(&text).concat(), text);
        }

        #[test]
        fn parts_fit_and_match_the_count(text in any_text()) {
            let sms = analyse(&text);
            let parts = split(&text);
            prop_assert_eq!(parts.len(), sms.segments);
            let limit = match (sms.encoding, parts.len()) {
                (Encoding::Gsm7, 1) => 160,
                (Encoding::Gsm7, _) => 153,
                (Encoding::Ucs2, 1) => 70,
                (Encoding::Ucs2, _) => 67,
            };
            prop_assert_eq!(sms.per_segment, limit);
            let sizes: Vec<usize> = parts.iter().map(|p| units(p, sms.encoding)).collect();
            prop_assert!(sizes.iter().all(|&n| n <= limit), "{:?} over {}", sizes, limit);
            prop_assert_eq!(sizes.iter().sum::<usize>(), sms.units);
            prop_assert_eq!(sms.units, units(&text, sms.encoding));
            prop_assert_eq!(sms.remaining, limit - sizes[sizes.len() - 1]);
            // Each full part leaves no room for the next part's first character.
            for (i, part) in parts.iter().enumerate().skip(1) {
                let first = part.chars().next().unwrap();
                prop_assert!(sizes[i - 1] + units_of(first, sms.encoding) > limit);
            }
        }

        #[test]
        fn gsm7_iff_every_char_in_tables(text in any_text()) {
            let expected = text.chars().all(in_tables);
            prop_assert_eq!(is_gsm7(&text), expected);
            let encoding = if expected { Encoding::Gsm7 } else { Encoding::Ucs2 };
            prop_assert_eq!(analyse(&text).encoding, encoding);
        }

        #[test]
        fn gsm_alphabet_text_is_gsm7(text in gsm_text()) {
            prop_assert_eq!(analyse(&text).encoding, Encoding::Gsm7);
        }

        #[test]
        fn appending_never_lowers_segments(text in any_text(), c in prop_oneof![gsm_char(), any::<char>()]) {
            let before = analyse(&text).segments;
            let after = analyse(&format!("{text}{c}")).segments;
            prop_assert!(after >= before, "{} -> {}", before, after);
        }
    }
}
