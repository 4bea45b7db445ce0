//! Terminal UI: ratatui views, key bindings, the tokio event loop. Draws the journey model; decides
//! nothing about packets or rules itself.
