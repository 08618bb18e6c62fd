//! The Huffman code of HPACK string literals (RFC 7541 §5.2, Appendix B).
//!
//! Clients Huffman-encode most field names and values, so decoding is on the
//! path of every HTTP/2 request. The decoder walks the code four bits at a
//! time through a state table built once from [`CODES`]: one lookup per
//! nibble instead of one branch per bit. A state is a node of the code tree
//! (the bits read since the last symbol); each of its sixteen transitions
//! says which node four more bits lead to and whether a symbol was completed
//! on the way (codes are at least five bits long, so at most one is).

use std::sync::OnceLock;

/// Why a Huffman-encoded string literal is invalid (RFC 7541 §5.2).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub(crate) enum HuffmanError {
    /// The EOS code appeared inside the string, which §5.2 makes an error.
    #[error("the EOS symbol appears in the string")]
    Eos,
    /// More than seven bits of padding: a whole octet of padding is an error.
    #[error("padding longer than 7 bits")]
    PaddingTooLong,
    /// Padding must be the most significant bits of the EOS code (all ones).
    #[error("padding is not a prefix of the EOS code")]
    PaddingNotOnes,
}

/// The code of each symbol, indexed by symbol (0–255, then EOS = 256): the
/// code's bits aligned to the least significant bit, and its length in bits.
/// Typed from RFC 7541 Appendix B ("code as hex", "len").
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),     // ' '
    (0x3f8, 10),   // '!'
    (0x3f9, 10),   // '"'
    (0xffa, 12),   // '#'
    (0x1ff9, 13),  // '$'
    (0x15, 6),     // '%'
    (0xf8, 8),     // '&'
    (0x7fa, 11),   // '''
    (0x3fa, 10),   // '('
    (0x3fb, 10),   // ')'
    (0xf9, 8),     // '*'
    (0x7fb, 11),   // '+'
    (0xfa, 8),     // ','
    (0x16, 6),     // '-'
    (0x17, 6),     // '.'
    (0x18, 6),     // '/'
    (0x0, 5),      // '0'
    (0x1, 5),      // '1'
    (0x2, 5),      // '2'
    (0x19, 6),     // '3'
    (0x1a, 6),     // '4'
    (0x1b, 6),     // '5'
    (0x1c, 6),     // '6'
    (0x1d, 6),     // '7'
    (0x1e, 6),     // '8'
    (0x1f, 6),     // '9'
    (0x5c, 7),     // ':'
    (0xfb, 8),     // ';'
    (0x7ffc, 15),  // '<'
    (0x20, 6),     // '='
    (0xffb, 12),   // '>'
    (0x3fc, 10),   // '?'
    (0x1ffa, 13),  // '@'
    (0x21, 6),     // 'A'
    (0x5d, 7),     // 'B'
    (0x5e, 7),     // 'C'
    (0x5f, 7),     // 'D'
    (0x60, 7),     // 'E'
    (0x61, 7),     // 'F'
    (0x62, 7),     // 'G'
    (0x63, 7),     // 'H'
    (0x64, 7),     // 'I'
    (0x65, 7),     // 'J'
    (0x66, 7),     // 'K'
    (0x67, 7),     // 'L'
    (0x68, 7),     // 'M'
    (0x69, 7),     // 'N'
    (0x6a, 7),     // 'O'
    (0x6b, 7),     // 'P'
    (0x6c, 7),     // 'Q'
    (0x6d, 7),     // 'R'
    (0x6e, 7),     // 'S'
    (0x6f, 7),     // 'T'
    (0x70, 7),     // 'U'
    (0x71, 7),     // 'V'
    (0x72, 7),     // 'W'
    (0xfc, 8),     // 'X'
    (0x73, 7),     // 'Y'
    (0xfd, 8),     // 'Z'
    (0x1ffb, 13),  // '['
    (0x7fff0, 19), // '\'
    (0x1ffc, 13),  // ']'
    (0x3ffc, 14),  // '^'
    (0x22, 6),     // '_'
    (0x7ffd, 15),  // '`'
    (0x3, 5),      // 'a'
    (0x23, 6),     // 'b'
    (0x4, 5),      // 'c'
    (0x24, 6),     // 'd'
    (0x5, 5),      // 'e'
    (0x25, 6),     // 'f'
    (0x26, 6),     // 'g'
    (0x27, 6),     // 'h'
    (0x6, 5),      // 'i'
    (0x74, 7),     // 'j'
    (0x75, 7),     // 'k'
    (0x28, 6),     // 'l'
    (0x29, 6),     // 'm'
    (0x2a, 6),     // 'n'
    (0x7, 5),      // 'o'
    (0x2b, 6),     // 'p'
    (0x76, 7),     // 'q'
    (0x2c, 6),     // 'r'
    (0x8, 5),      // 's'
    (0x9, 5),      // 't'
    (0x2d, 6),     // 'u'
    (0x77, 7),     // 'v'
    (0x78, 7),     // 'w'
    (0x79, 7),     // 'x'
    (0x7a, 7),     // 'y'
    (0x7b, 7),     // 'z'
    (0x7ffe, 15),  // '{'
    (0x7fc, 11),   // '|'
    (0x3ffd, 14),  // '}'
    (0x1ffd, 13),  // '~'
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30), // EOS
];

/// The EOS symbol's index in [`CODES`] (RFC 7541 §5.2).
const EOS: u16 = 256;

/// A transition completed a symbol: [`Transition::symbol`] is output.
const EMIT: u8 = 1;
/// A transition reached EOS (or a code the table lacks): the string is invalid.
const FAIL: u8 = 2;

/// Where four more bits lead from one state.
#[derive(Clone, Copy, Default)]
struct Transition {
    /// The node reached (0 is the root: a symbol just ended).
    next: u16,
    /// The symbol completed on the way, when `flags` has [`EMIT`].
    symbol: u8,
    /// [`EMIT`] and/or [`FAIL`].
    flags: u8,
}

/// Whether a string may end in a state, and if not, why (§5.2).
#[derive(Clone, Copy)]
enum End {
    /// At a symbol boundary, or after at most 7 bits that are all ones.
    Valid,
    /// The bits since the last symbol are all ones but there are 8 or more.
    TooLong,
    /// The bits since the last symbol are not all ones.
    NotOnes,
}

/// The nibble-at-a-time decoding table: one row per inner node of the tree.
struct Table {
    /// `transitions[state][nibble]`.
    transitions: Vec<[Transition; 16]>,
    /// Whether a string may end in each state.
    ends: Vec<End>,
}

/// A child of a node in the code tree while it is built.
#[derive(Clone, Copy)]
enum Child {
    /// Nothing yet (no code has these bits as a prefix).
    None,
    /// An inner node, by its index.
    Node(u16),
    /// The end of a code: the symbol (256 is EOS).
    Leaf(u16),
}

/// An inner node of the code tree: its two children and what its path is.
struct Node {
    /// The child for a 0 bit and for a 1 bit.
    children: [Child; 2],
    /// How many bits lead from the root to this node.
    depth: u8,
    /// Whether all those bits are ones (a prefix of EOS: valid padding).
    ones: bool,
}

/// The tree of [`CODES`]: the 257 leaves hang below 256 inner nodes.
fn tree() -> Vec<Node> {
    let mut nodes = vec![Node {
        children: [Child::None; 2],
        depth: 0,
        ones: true,
    }];
    for (symbol, &(code, len)) in (0u16..).zip(CODES.iter()) {
        let mut at = 0usize;
        for shift in (0..len).rev() {
            let bit = usize::from((code >> shift) & 1 == 1);
            if shift == 0 {
                nodes[at].children[bit] = Child::Leaf(symbol);
                break;
            }
            at = match nodes[at].children[bit] {
                Child::Node(next) => usize::from(next),
                // A leaf here would mean the table is not prefix-free; the
                // tests check it is, so this arm only keeps the walk total.
                Child::Leaf(_) | Child::None => {
                    let next = nodes.len();
                    let child = Node {
                        children: [Child::None; 2],
                        depth: nodes[at].depth + 1,
                        ones: nodes[at].ones && bit == 1,
                    };
                    // At most 31 × 257 nodes: always fits in a u16.
                    let index = u16::try_from(next).unwrap_or(u16::MAX);
                    nodes[at].children[bit] = Child::Node(index);
                    nodes.push(child);
                    next
                }
            };
        }
    }
    nodes
}

/// Follows four bits from `node`, noting the symbol completed on the way.
fn transition(nodes: &[Node], node: usize, nibble: u8) -> Transition {
    let mut out = Transition::default();
    let mut at = node;
    for shift in (0..4).rev() {
        let bit = usize::from((nibble >> shift) & 1);
        match nodes[at].children[bit] {
            Child::Node(next) => at = usize::from(next),
            Child::Leaf(symbol) => match u8::try_from(symbol) {
                Ok(byte) if symbol != EOS => {
                    out.symbol = byte;
                    out.flags |= EMIT;
                    at = 0;
                }
                _ => {
                    out.flags |= FAIL;
                    return out;
                }
            },
            Child::None => {
                out.flags |= FAIL;
                return out;
            }
        }
    }
    // Fewer than 2^16 nodes, as in `tree`.
    out.next = u16::try_from(at).unwrap_or(u16::MAX);
    out
}

/// Builds the decoding table from [`CODES`].
fn build() -> Table {
    let nodes = tree();
    let transitions = (0..nodes.len())
        .map(|node| {
            let mut row = [Transition::default(); 16];
            for (nibble, slot) in (0u8..).zip(row.iter_mut()) {
                *slot = transition(&nodes, node, nibble);
            }
            row
        })
        .collect();
    let ends = nodes
        .iter()
        .map(|node| match (node.ones, node.depth) {
            (true, 0..=7) => End::Valid,
            (true, _) => End::TooLong,
            (false, _) => End::NotOnes,
        })
        .collect();
    Table { transitions, ends }
}

/// The decoding table, built on first use (a few microseconds, once).
fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// Decodes a Huffman-encoded string literal (RFC 7541 §5.2) into `out`.
///
/// Rejects the EOS symbol in the string, padding longer than 7 bits, and
/// padding that is not all ones, as §5.2 requires of a decoder.
pub(super) fn decode(encoded: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let table = table();
    // Codes are at least 5 bits: this is the most the string can hold.
    out.reserve(encoded.len() * 8 / 5);
    let mut state = 0usize;
    for &byte in encoded {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = table.transitions[state][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(HuffmanError::Eos);
            }
            if step.flags & EMIT != 0 {
                out.push(step.symbol);
            }
            state = usize::from(step.next);
        }
    }
    match table.ends[state] {
        End::Valid => Ok(()),
        End::TooLong => Err(HuffmanError::PaddingTooLong),
        End::NotOnes => Err(HuffmanError::PaddingNotOnes),
    }
}
