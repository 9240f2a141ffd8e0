// fork + exec of PROGRAM, COUNT times, each waited for. Prints the number of successful runs.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PROGRAM COUNT\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]), ok = 0;
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			execl(argv[1], argv[1], (char *)NULL);
			_exit(127);
		}
		int status;
		if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	}
	printf("%ld\n", ok);
	return 0;
}
