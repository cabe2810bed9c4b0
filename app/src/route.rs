//! The app's pages and their URLs. Routing is done by hand (history.pushState and popstate) to
//! keep a router crate out of the download.
//!
//! The chat bundle renders some pages and the full bundle every page (ARCHITECTURE.md, "The
//! app's bundles"); [`Route::in_chat_bundle`] is the one list.

/// A page of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the room list.
    Home,
    /// `/r/<slug>`: one room.
    Room(String),
    /// `/devices`: the account's signed-in devices.
    Devices,
    /// `/profile`: edit one's profile.
    Profile,
    /// `/admin`: users and rooms (admins only).
    Admin,
    /// `/logs`: the structured log (admins only; anyone else sees "Not found").
    Logs,
    /// `/settings`: the Worker's secrets and provider settings (admins only; anyone else sees
    /// "Not found").
    Settings,
    /// `/invite/<slug>/<token>`: accept an invite, then open the room.
    Invite(String, String),
    /// `/analytics`: live usage everywhere (admins only; the server answers no one else).
    Analytics,
    /// `/analytics/<slug>`: one room's usage (its owner and admins).
    RoomAnalytics(String),
    /// `/performance`: how rooms, requests and browsers perform (admins only).
    Performance,
}

impl Route {
    /// The route for a path; unknown paths show the home page.
    pub fn parse(path: &str) -> Route {
        if path == "/devices" {
            return Route::Devices;
        }
        if path == "/profile" {
            return Route::Profile;
        }
        if path == "/admin" {
            return Route::Admin;
        }
        if path == "/logs" {
            return Route::Logs;
        }
        if path == "/settings" {
            return Route::Settings;
        }
        if path == "/analytics" {
            return Route::Analytics;
        }
        if path == "/performance" {
            return Route::Performance;
        }
        if let Some(slug) = path.strip_prefix("/analytics/") {
            if !slug.is_empty() && !slug.contains('/') {
                return Route::RoomAnalytics(slug.to_owned());
            }
        }
        if let Some((slug, token)) = path
            .strip_prefix("/invite/")
            .and_then(|rest| rest.split_once('/'))
        {
            if !slug.is_empty() && !token.is_empty() && !token.contains('/') {
                return Route::Invite(slug.to_owned(), token.to_owned());
            }
        }
        match path.strip_prefix("/r/") {
            Some(slug) if !slug.is_empty() && !slug.contains('/') => Route::Room(slug.to_owned()),
            _ => Route::Home,
        }
    }

    /// Whether the chat bundle renders this page. The others (administration, analytics, logs,
    /// settings, one's profile and devices) are visited rarely, so their code stays out of the
    /// first download; the chat bundle hands them to the full bundle.
    pub fn in_chat_bundle(&self) -> bool {
        match self {
            Route::Home | Route::Room(_) | Route::Invite(..) => true,
            Route::Devices
            | Route::Profile
            | Route::Admin
            | Route::Logs
            | Route::Settings
            | Route::Analytics
            | Route::RoomAnalytics(_)
            | Route::Performance => false,
        }
    }

    /// The route's path.
    pub fn path(&self) -> String {
        match self {
            Route::Home => "/".to_owned(),
            Route::Room(slug) => format!("/r/{slug}"),
            Route::Devices => "/devices".to_owned(),
            Route::Profile => "/profile".to_owned(),
            Route::Admin => "/admin".to_owned(),
            Route::Logs => "/logs".to_owned(),
            Route::Settings => "/settings".to_owned(),
            Route::Invite(slug, token) => format!("/invite/{slug}/{token}"),
            Route::Analytics => "/analytics".to_owned(),
            Route::RoomAnalytics(slug) => format!("/analytics/{slug}"),
            Route::Performance => "/performance".to_owned(),
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
    fn profile_admin_and_invite_paths_parse_and_print_back() {
        for route in [
            Route::Profile,
            Route::Admin,
            Route::Logs,
            Route::Invite("club".into(), "abc123".into()),
        ] {
            assert_eq!(Route::parse(&route.path()), route);
        }
        assert_eq!(Route::parse("/invite/club"), Route::Home);
        assert_eq!(Route::parse("/invite/club/a/b"), Route::Home);
    }

    #[test]
    fn the_analytics_and_performance_pages_have_their_own_paths() {
        for route in [
            Route::Analytics,
            Route::Performance,
            Route::RoomAnalytics("lobby".into()),
        ] {
            assert_eq!(Route::parse(&route.path()), route);
        }
        assert_eq!(Route::parse("/analytics/"), Route::Home);
        assert_eq!(Route::parse("/analytics/a/b"), Route::Home);
    }

    #[test]
    fn the_settings_page_has_its_own_path() {
        assert_eq!(Route::parse("/settings"), Route::Settings);
        assert_eq!(Route::Settings.path(), "/settings");
        assert_eq!(Route::parse("/settings/x"), Route::Home);
    }

    #[test]
    fn the_chat_bundle_renders_the_room_list_rooms_and_invites_and_nothing_else() {
        let chat = ["/", "/r/lobby", "/invite/club/abc123", "/elsewhere"];
        for path in chat {
            assert!(Route::parse(path).in_chat_bundle(), "{path}");
        }
        let elsewhere = [
            "/devices",
            "/profile",
            "/admin",
            "/logs",
            "/settings",
            "/analytics",
            "/analytics/lobby",
            "/performance",
        ];
        for path in elsewhere {
            assert!(!Route::parse(path).in_chat_bundle(), "{path}");
        }
    }

    #[test]
    fn unknown_or_malformed_paths_go_home() {
        assert_eq!(Route::parse("/"), Route::Home);
        assert_eq!(Route::parse("/r/"), Route::Home);
        assert_eq!(Route::parse("/r/a/b"), Route::Home);
        assert_eq!(Route::parse("/elsewhere"), Route::Home);
    }
}
