//! The footer: the app's name, build version and license, so a report can name what it ran.

use yew::prelude::*;

/// `<footer class="about">`: "Durable Chat <version> · MIT".
#[function_component]
pub fn About() -> Html {
    html! {
        <footer class="about muted">
            { "Durable Chat " }
            <span class="build-version" title="Build version">{ crate::version::BUILD }</span>
            { " · MIT license" }
        </footer>
    }
}
