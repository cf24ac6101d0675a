#include <stdio.h>
int main(void) { puts("rlfr " RLFR_VERSION); return 0; }
