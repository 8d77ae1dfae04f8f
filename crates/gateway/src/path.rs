//! A request path as the gateway routes it: its segments, percent-decoded once, with every
//! spelling that could make a service see another path refused. The service is then called with
//! these segments encoded again, so the path a service sees is the path that was routed, by
//! construction: no `..` (raw, `%2e%2e`, `.%2E`), no encoded `/` or `\`, no NUL can turn
//! `/v1/rooms/x/../../../internal/…` into `/internal/…` on the way (an HTTP client resolves dot
//! segments when it parses the URL it is given).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What a segment is encoded with on the way to a service: everything but unreserved characters
/// and the sub-delimiters and `:@` RFC 3986 allows in a segment unencoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Why a path is refused before routing (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path has a dot segment (. or ..)")]
    DotSegment,
    #[error("the path has an empty segment (//)")]
    EmptySegment,
    #[error("a path segment encodes a separator, a control character or invalid UTF-8")]
    EncodedSeparator,
}

/// A path fit to route: its decoded segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedPath {
    segments: Vec<String>,
}

impl RoutedPath {
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        if rest.is_empty() {
            return Ok(Self { segments: vec![] });
        }
        let segments = rest
            .split('/')
            .map(|raw_segment| {
                let segment = percent_decode_str(raw_segment)
                    .decode_utf8()
                    .map_err(|_| PathError::EncodedSeparator)?;
                if segment.is_empty() {
                    return Err(PathError::EmptySegment);
                }
                if segment == "." || segment == ".." {
                    return Err(PathError::DotSegment);
                }
                if segment
                    .chars()
                    .any(|c| c == '/' || c == '\\' || c.is_control())
                {
                    return Err(PathError::EncodedSeparator);
                }
                Ok(segment.into_owned())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(String::as_str)
    }

    /// The path to send on: the segments, each encoded again.
    pub fn encoded(&self) -> String {
        if self.segments.is_empty() {
            return "/".into();
        }
        self.segments
            .iter()
            .map(|segment| format!("/{}", utf8_percent_encode(segment, SEGMENT)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_dot_segment_is_refused() {
        for raw in [
            "/v1/rooms/x/../../../internal/v1/rooms/r/messages",
            "/v1/rooms/x/%2e%2e/%2e%2e/%2e%2e/internal/v1/rooms/r/messages",
            "/v1/rooms/x/%2E%2E/internal",
            "/v1/rooms/x/.%2e/internal",
            "/v1/users/../../metrics",
            "/v1/users/./me",
            "/v1/users/%2e/me",
            "/..",
        ] {
            assert_eq!(RoutedPath::parse(raw), Err(PathError::DotSegment), "{raw}");
        }
    }

    #[test]
    fn encoded_separators_empty_segments_and_relative_paths_are_refused() {
        assert_eq!(
            RoutedPath::parse("/v1/rooms/x%2f..%2f..%2finternal"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            RoutedPath::parse("/v1/rooms/x%5c..%5cinternal"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            RoutedPath::parse("/v1/rooms/%00"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            RoutedPath::parse("/v1/rooms/%ff"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            RoutedPath::parse("/v1//rooms"),
            Err(PathError::EmptySegment)
        );
        assert_eq!(RoutedPath::parse("v1/rooms"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn what_is_sent_on_is_what_was_routed() {
        let path = RoutedPath::parse("/v1/users/by-nickname/%ED%95%9C%20a.b").unwrap();
        assert_eq!(
            path.segments().collect::<Vec<_>>(),
            ["v1", "users", "by-nickname", "한 a.b"]
        );
        assert_eq!(path.encoded(), "/v1/users/by-nickname/%ED%95%9C%20a.b");
        assert_eq!(RoutedPath::parse(&path.encoded()).unwrap(), path);
        assert_eq!(RoutedPath::parse("/").unwrap().encoded(), "/");
    }
}
