// The smallest program to exec: exits 0.
int main(void) { return 0; }
