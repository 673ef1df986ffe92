//! Planning upstream joins across a pool of sockets (Linux per-socket limits).
