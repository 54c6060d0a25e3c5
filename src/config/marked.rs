//! A YAML tree that remembers where each node is, for documents other than crossgate's own
//! config: the Kubernetes manifests `crossgate import` reads (several documents in a file,
//! loosely typed, and errors that must point at a line). Built from yaml-rust2's event parser,
//! like [`super::locate`], so the YAML libraries stay behind `src/config/`.
//!
//! Scalars keep their text as written (`true`, `600`, `"600"` are all text); the reader decides
//! what a value means, the way Kubernetes does for annotations (always strings) and ports.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A node and its position (line and column, both from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing after `key:`.
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A `key: value` pair; keys are scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_line: usize,
    pub key_col: usize,
    pub value: Node,
}

/// Text that is not YAML, with where the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

impl Node {
    /// The value at `key` of a map (`None` for other nodes and absent keys).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// Every document of a YAML stream (`---` separated), in order; empty documents are `Null`.
pub fn documents(source: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut b = Builder::default();
    Parser::new_from_str(source)
        .load(&mut b, true)
        .map_err(|e| SyntaxError {
            message: e.info().to_owned(),
            line: e.marker().line(),
            col: e.marker().col() + 1,
        })?;
    match b.error {
        Some(e) => Err(e),
        None => Ok(b.docs),
    }
}

enum Frame {
    Seq(Vec<Node>, Marker, usize),
    /// Entries, the key waiting for its value, the mark, the anchor id.
    Map(Vec<Entry>, Option<(String, Marker)>, Marker, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
}

fn at(value: Value, m: Marker) -> Node {
    Node {
        value,
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Builder {
    fn fail(&mut self, message: String, m: Marker) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                message,
                line: m.line(),
                col: m.col() + 1,
            });
        }
    }

    fn push(&mut self, node: Node, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                Some((key, km)) => {
                    if entries.iter().any(|e| e.key == key) {
                        let message = format!("the key {key:?} appears twice in this map");
                        self.fail(message, km);
                        return;
                    }
                    entries.push(Entry {
                        key,
                        key_line: km.line(),
                        key_col: km.col() + 1,
                        value: node,
                    });
                }
                None => match node.value {
                    Value::Scalar(k) => *pending = Some((k, mark)),
                    Value::Null => *pending = Some((String::new(), mark)),
                    _ => self.fail(
                        "a map key must be a plain value, not a list or a map".into(),
                        mark,
                    ),
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let null = style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let value = if null {
                    Value::Null
                } else {
                    Value::Scalar(text)
                };
                self.push(at(value, mark), anchor, mark);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.line = mark.line();
                    node.col = mark.col() + 1;
                    self.push(node, 0, mark);
                }
                None => self.fail(
                    "an alias (*name) to an anchor that is not defined".into(),
                    mark,
                ),
            },
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(Vec::new(), mark, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Vec::new(), None, mark, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items, m, anchor)) => {
                    self.push(at(Value::Seq(items), m), anchor, m)
                }
                Some(Frame::Map(entries, _, m, anchor)) => {
                    // A block map's own mark can sit after its first key: point at that key.
                    let node = match entries.first() {
                        Some(e) => Node {
                            value: Value::Map(Vec::new()),
                            line: e.key_line,
                            col: e.key_col,
                        },
                        None => at(Value::Map(Vec::new()), m),
                    };
                    let node = Node {
                        value: Value::Map(entries),
                        ..node
                    };
                    self.push(node, anchor, m);
                }
                None => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_of_a_stream_is_read_with_positions() {
        let docs = documents("a: 1\n---\nb:\n  - x\n  - 'y'\n---\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].get("a").and_then(Node::as_str), Some("1"));
        let b = docs[1].get("b").unwrap();
        let Value::Seq(items) = &b.value else {
            panic!("{b:?}")
        };
        assert_eq!((items[1].line, items[1].col), (5, 5));
        assert_eq!(items[1].as_str(), Some("y"));
        assert_eq!(docs[2].value, Value::Null);
    }

    #[test]
    fn scalars_keep_their_text_and_only_plain_null_is_null() {
        let d = &documents("t: True\nn: ~\nq: \"null\"\ne:\n").unwrap()[0];
        assert_eq!(d.get("t").and_then(Node::as_str), Some("True"));
        assert_eq!(d.get("n").map(|n| &n.value), Some(&Value::Null));
        assert_eq!(d.get("q").and_then(Node::as_str), Some("null"));
        assert_eq!(d.get("e").map(|n| &n.value), Some(&Value::Null));
    }

    #[test]
    fn a_duplicate_key_is_an_error_at_the_second_key() {
        let e = documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1));
        assert!(e.message.contains("\"a\" appears twice"), "{e:?}");
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let d = &documents("x: &p {k: v}\ny: *p\n").unwrap()[0];
        assert_eq!(
            d.get("y").and_then(|y| y.get("k")).and_then(Node::as_str),
            Some("v")
        );
    }

    #[test]
    fn broken_yaml_says_where() {
        let e = documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
    }
}
