/*
 * empty.bpf.c: the benchmark floor. The same hooks as guard.bpf.c, each allowing
 * everything, so that tools/bench/guard-bench measures what any cgroup sock_addr program
 * costs (dispatch, sockaddr copy) apart from what the guard's lookups add.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/connect4")
int empty_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/connect6")
int empty_connect6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int empty_sendmsg4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int empty_sendmsg6(struct bpf_sock_addr *ctx)
{
	return 1;
}

char LICENSE[] SEC("license") = "Apache-2.0";
