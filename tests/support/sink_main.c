/* ilagent-sink: a fast local stand-in for the ilert API (performance tests). */
#include <stdio.h>

int main(void)
{
	fputs("ilagent-sink: not built yet\n", stderr);
	return 1;
}
