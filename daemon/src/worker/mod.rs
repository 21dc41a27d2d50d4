//! A worker thread: one engine, one device queue, the apps it serves, and
//! adaptive polling (design §3.3).
