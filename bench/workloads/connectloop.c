// TCP connect + close to a listener of its own on 127.0.0.1, COUNT times. Prints the number of connects.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener;

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(listener, NULL, NULL);
		if (c < 0)
			return NULL;
		close(c);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s COUNT\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]), ok = 0;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(listener, (struct sockaddr *)&a, sizeof(a)) || listen(listener, 1024) || getsockname(listener, (struct sockaddr *)&a, &len)) {
		perror("listen");
		return 1;
	}
	pthread_t t;
	pthread_create(&t, NULL, acceptor, NULL);
	for (long i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct linger l = { 1, 0 }; /* RST on close: no TIME_WAIT pile-up across runs */
		setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			ok++;
		close(s);
	}
	printf("%ld\n", ok);
	return 0;
}
