//! The app's two pages and their URLs. Routing is done by hand (history.pushState and
//! popstate) to keep a router crate out of the download.

/// A page of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the room list.
    Home,
    /// `/r/<slug>`: one room.
    Room(String),
    /// `/devices`: the account's signed-in devices.
    Devices,
}

impl Route {
    /// The route for a path; unknown paths show the home page.
    pub fn parse(path: &str) -> Route {
        if path == "/devices" {
            return Route::Devices;
        }
        match path.strip_prefix("/r/") {
            Some(slug) if !slug.is_empty() && !slug.contains('/') => Route::Room(slug.to_owned()),
            _ => Route::Home,
        }
    }

    /// The route's path.
    pub fn path(&self) -> String {
        match self {
            Route::Home => "/".to_owned(),
            Route::Room(slug) => format!("/r/{slug}"),
            Route::Devices => "/devices".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_paths_parse_to_their_slug_and_back() {
        let route = Route::parse("/r/general");
        assert_eq!(route, Route::Room("general".into()));
        assert_eq!(route.path(), "/r/general");
    }

    #[test]
    fn the_devices_page_has_its_own_path() {
        assert_eq!(Route::parse("/devices"), Route::Devices);
        assert_eq!(Route::Devices.path(), "/devices");
        assert_eq!(Route::parse("/devices/x"), Route::Home);
    }

    #[test]
    fn unknown_or_malformed_paths_go_home() {
        assert_eq!(Route::parse("/"), Route::Home);
        assert_eq!(Route::parse("/r/"), Route::Home);
        assert_eq!(Route::parse("/r/a/b"), Route::Home);
        assert_eq!(Route::parse("/elsewhere"), Route::Home);
    }
}
