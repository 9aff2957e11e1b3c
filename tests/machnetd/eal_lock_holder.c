/* Joins a machnetd's EAL as a secondary process, takes the read side of
 * EAL's shared memory lock (as a program inside rte_eal_init or a heap
 * operation does) and dies with SIGKILL while holding it: the lock stays
 * held for good. Used by test_machnetd_stuck_eal.sh.
 *   eal_lock_holder EAL_PREFIX */
#include <rte_eal.h>
#include <rte_eal_memconfig.h>
#include <signal.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: eal_lock_holder EAL_PREFIX\n");
    return 2;
  }
  char prefix[256];
  snprintf(prefix, sizeof(prefix), "--file-prefix=%s", argv[1]);
  char* args[] = {"eal_lock_holder", "--proc-type=secondary", prefix, "--no-pci", "--lcores",
                  "100@(0)",         "--log-level=error"};
  if (rte_eal_init((int)(sizeof(args) / sizeof(args[0])), args) < 0) {
    fprintf(stderr, "eal_lock_holder: rte_eal_init failed\n");
    return 1;
  }
  rte_mcfg_mem_read_lock();
  printf("holding EAL's memory lock, dying\n");
  fflush(stdout);
  raise(SIGKILL);
  return 1;
}
