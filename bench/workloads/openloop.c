// Opens and closes PATH COUNT times, then prints the number of successful opens. A workload for tests
// and benchmarks: the same program in every configuration, so only the agent's cost differs.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PATH COUNT\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]), ok = 0;
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd >= 0) {
			ok++;
			close(fd);
		}
	}
	printf("%ld\n", ok);
	return 0;
}
