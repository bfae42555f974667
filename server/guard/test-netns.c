/*
 * test-netns.c: the private network namespace of the guard's tests (test-netns.h): unshare,
 * then lo up with the SIOCSIFFLAGS ioctl (no ip(8) needed). Needs CAP_SYS_ADMIN.
 */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-netns.h"

int test_netns_enter(void)
{
	struct ifreq ifr = { 0 };
	int fd, r;

	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	strcpy(ifr.ifr_name, "lo");
	r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}
