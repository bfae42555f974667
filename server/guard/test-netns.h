#pragma once
/*
 * For the guard's tests only: a private network namespace, so that even a broken guard
 * cannot send a packet anywhere but loopback.
 */

/* Moves the calling process into a new network namespace with only lo up. 0 or -errno. */
int test_netns_enter(void);
