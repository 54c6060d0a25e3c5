//! Finds the line and column of a YAML path, for errors found after deserializing (an origin
//! that does not parse, a route naming an unknown upstream). serde_yaml reports positions only
//! for its own errors, so the file is walked again with yaml-rust2's event parser, which marks
//! every node.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::PathSeg;

enum Node {
    Scalar(String, Marker),
    Seq(Vec<Node>, Marker),
    Map(Vec<(Node, Option<Node>)>, Marker),
}

impl Node {
    fn mark(&self) -> Marker {
        match self {
            // A block map's own mark can sit after its first key: point at that key instead.
            Node::Map(entries, m) => entries.first().map_or(*m, |(k, _)| k.mark()),
            Node::Scalar(_, m) | Node::Seq(_, m) => *m,
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    root: Option<Node>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Node::Seq(items, _)) => items.push(node),
            Some(Node::Map(entries, _)) => match entries.last_mut() {
                // A key waits for its value.
                Some((_, value @ None)) => *value = Some(node),
                _ => entries.push((node, None)),
            },
            _ => {
                if self.root.is_none() {
                    self.root = Some(node)
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => self.push_value(Node::Scalar(s, mark)),
            Event::Alias(_) => self.push_value(Node::Scalar(String::new(), mark)),
            Event::SequenceStart(..) => self.stack.push(Node::Seq(Vec::new(), mark)),
            Event::MappingStart(..) => self.stack.push(Node::Map(Vec::new(), mark)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = self.stack.pop() {
                    self.push_value(done);
                }
            }
            _ => {}
        }
    }
}

/// Line and column (from 1) of the node at `path`, or of the deepest part of it that exists.
pub fn locate(source: &str, path: &[PathSeg]) -> Option<(usize, usize)> {
    let mut builder = Builder::default();
    Parser::new_from_str(source)
        .load(&mut builder, false)
        .ok()?;
    let mut node = builder.root.as_ref()?;
    for seg in path {
        let next = match (seg, node) {
            (PathSeg::Key(k), Node::Map(entries, _)) => entries
                .iter()
                .find(|(key, _)| matches!(key, Node::Scalar(s, _) if s == k))
                .and_then(|(_, v)| v.as_ref()),
            (PathSeg::Index(i), Node::Seq(items, _)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    let m = node.mark();
    Some((m.line(), m.col() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> PathSeg {
        PathSeg::Key(s.into())
    }

    const DOC: &str = "listen: 127.0.0.1:8080\nroutes:\n  - name: a\n    cors:\n      allow_origins:\n        - https://a.example\n        - https//broken\n";

    #[test]
    fn finds_a_list_item_inside_nested_maps() {
        let path = [
            k("routes"),
            PathSeg::Index(0),
            k("cors"),
            k("allow_origins"),
            PathSeg::Index(1),
        ];
        assert_eq!(locate(DOC, &path), Some((7, 11)));
    }

    #[test]
    fn falls_back_to_the_deepest_existing_node() {
        let path = [k("routes"), PathSeg::Index(0), k("nothing")];
        assert_eq!(locate(DOC, &path), Some((3, 5)));
    }
}
