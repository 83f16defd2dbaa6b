/*
 * coap-load: a native CoAP load generator for bench/server-cpu.ts.
 *
 *   coap-load PORT IN_FLIGHT WARMUP_MS DURATION_MS REQUEST_FILE SERVER_PID[,PID...] [TIMEOUT_MS]
 *
 * Keeps IN_FLIGHT confirmable requests outstanding to 127.0.0.1:PORT (closed loop: each response
 * starts the next request), matches each response to its request by token and Message ID, and
 * after the warm-up measures for DURATION_MS: responses received, its own CPU time (getrusage) and
 * the server's CPU time (utime + stime of /proc/SERVER_PID/stat), both read at the window's edges.
 * SERVER_PID may list more processes, comma-separated (a proxy, then its origin): the first is
 * "serverCpuMicros", every one is in "processCpuMicros", in order.
 * Prints one JSON line on stdout.
 *
 * REQUEST_FILE holds requests as records of a 2-byte big-endian length and the encoded CoAP
 * message, each with a 4-byte token (TKL 4). The Message ID (bytes 2-3) and token (bytes 4-7) are
 * overwritten per send; neither is covered by OSCORE's AAD (RFC 8613 §5.4), so a protected request
 * stays valid. One record is reused for every request (plain CoAP); several are each sent once, in
 * order (OSCORE: every record carries its own Partial IV, and a Partial IV must never be sent
 * twice, so the generator never retransmits: a request unanswered after TIMEOUT_MS (default 1000)
 * is counted as lost and its slot sends the next record). A response that comes separately (an
 * empty ACK first, then a CON: a proxy whose upstream leg queues) is acknowledged and counted;
 * "emptyAcks" and "separate" say how often. When the records run out, no more
 * requests are sent and the result says "exhausted": the caller retries with a larger pool.
 *
 * Every loop is bounded by the clock: the process ends at warm-up + duration (+ 100 ms).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_IN_FLIGHT 4096
#define MAX_MESSAGE 1152
#define MAX_PROCESSES 4

struct slot {
  int busy;
  uint16_t generation;
  uint16_t mid;
  double sent_at;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double own_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* utime + stime of a process (all its threads), in µs; -1 when it cannot be read. */
static double process_cpu_us(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name may contain spaces and parentheses: fields are counted after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  /* after ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  return (double)(utime + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static uint8_t *records;
static uint32_t *offsets;
static uint16_t *lengths;
static size_t record_count, next_record;

static int load_records(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  records = malloc(size > 0 ? (size_t)size : 1);
  if (!records || fread(records, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    return -1;
  }
  fclose(f);
  size_t cap = (size_t)size / 3 + 1;
  offsets = malloc(cap * sizeof *offsets);
  lengths = malloc(cap * sizeof *lengths);
  for (long at = 0; at + 2 <= size;) {
    uint16_t len = (uint16_t)(records[at] << 8 | records[at + 1]);
    if (len < 8 || len > MAX_MESSAGE || at + 2 + len > size || (records[at + 2] & 0x0f) != 4) return -2;
    offsets[record_count] = (uint32_t)(at + 2);
    lengths[record_count++] = len;
    at += 2 + len;
  }
  return record_count > 0 ? 0 : -2;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: coap-load PORT IN_FLIGHT WARMUP_MS DURATION_MS REQUEST_FILE SERVER_PID[,PID...] [TIMEOUT_MS]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int in_flight = atoi(argv[2]);
  double warmup = atof(argv[3]), duration = atof(argv[4]);
  long pids[MAX_PROCESSES];
  int process_count = 0;
  for (char *at = argv[6]; *at && process_count < MAX_PROCESSES;) {
    char *end;
    pids[process_count++] = strtol(at, &end, 10);
    at = *end == ',' ? end + 1 : end + strlen(end);
  }
  double timeout = argc > 7 ? atof(argv[7]) : 1000;
  if (process_count == 0 || port <= 0 || port > 65535 || in_flight < 1 || in_flight > MAX_IN_FLIGHT || duration <= 0) {
    fprintf(stderr, "coap-load: bad arguments\n");
    return 2;
  }
  int rc = load_records(argv[5]);
  if (rc != 0) {
    fprintf(stderr, "coap-load: %s: %s\n", argv[5], rc == -1 ? strerror(errno) : "not a list of requests with 4-byte tokens");
    return 2;
  }
  int reuse = record_count == 1;

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buffer = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    perror("coap-load: socket");
    return 1;
  }

  static struct slot slots[MAX_IN_FLIGHT];
  uint8_t out[MAX_MESSAGE], in[2048];
  uint16_t next_mid = (uint16_t)(getpid() * 7919);
  int exhausted = 0;
  long responses = 0, errors = 0, lost = 0, stale = 0, send_failures = 0, empty_acks = 0, separate = 0;
  long window_responses = -1;
  double start = now_ms(), window_start = start + warmup, window_end = window_start + duration;
  double cpu0 = 0, cpu1 = 0, measured_at0 = 0, measured_at1 = 0;
  double server0[MAX_PROCESSES], server1[MAX_PROCESSES];
  int phase = 0; /* 0 warm-up, 1 measuring, 2 done */

  /* Sends the next request on slot i; returns 0 when there is none left to send. */
#define SEND(i)                                                                                   \
  do {                                                                                            \
    if (!reuse && next_record >= record_count) {                                                  \
      exhausted = 1;                                                                              \
      slots[i].busy = 0;                                                                          \
      break;                                                                                      \
    }                                                                                             \
    size_t r = reuse ? 0 : next_record++;                                                         \
    uint16_t len = lengths[r];                                                                    \
    memcpy(out, records + offsets[r], len);                                                       \
    slots[i].generation++;                                                                        \
    slots[i].mid = next_mid++;                                                                    \
    out[2] = (uint8_t)(slots[i].mid >> 8);                                                        \
    out[3] = (uint8_t)slots[i].mid;                                                               \
    out[4] = (uint8_t)((i) >> 8);                                                                 \
    out[5] = (uint8_t)(i);                                                                        \
    out[6] = (uint8_t)(slots[i].generation >> 8);                                                 \
    out[7] = (uint8_t)slots[i].generation;                                                        \
    slots[i].busy = 1;                                                                            \
    slots[i].sent_at = now_ms();                                                                  \
    if (send(fd, out, len, 0) != (ssize_t)len) send_failures++;                                   \
  } while (0)

  for (int i = 0; i < in_flight; i++) SEND(i);

  double next_timeout_check = start + 50;
  while (phase < 2) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 5);
    for (;;) {
      ssize_t n = recv(fd, in, sizeof in, MSG_DONTWAIT);
      if (n < 0) break;
      if (n == 4 && in[0] == 0x60 && in[1] == 0) {
        empty_acks++; /* the request was acknowledged; its separate response follows */
        continue;
      }
      if (n < 8 || (in[0] >> 6) != 1 || (in[0] & 0x0f) != 4) {
        stale++;
        continue;
      }
      int type = (in[0] >> 4) & 3;
      uint16_t mid = (uint16_t)(in[2] << 8 | in[3]);
      int i = in[4] << 8 | in[5];
      uint16_t generation = (uint16_t)(in[6] << 8 | in[7]);
      if (type == 0) {
        /* A separate response (RFC 7252 §5.2.2) comes in a CON of its own, with the server's
           Message ID: acknowledged (also a duplicate, whose ACK was lost), matched by token alone. */
        uint8_t ack[4] = {0x60, 0, in[2], in[3]};
        send(fd, ack, sizeof ack, 0);
        if (i < in_flight && slots[i].busy && slots[i].generation == generation) separate++;
        else {
          stale++;
          continue;
        }
      } else if (i >= in_flight || !slots[i].busy || slots[i].generation != generation || slots[i].mid != mid || type != 2) {
        stale++; /* a late answer to a request given up on, or not ours */
        continue;
      }
      if ((in[1] >> 5) != 2) errors++; /* not a 2.xx */
      responses++;
      SEND(i);
    }
    double t = now_ms();
    if (phase == 0 && t >= window_start) {
      cpu0 = own_cpu_us();
      for (int k = 0; k < process_count; k++) server0[k] = process_cpu_us(pids[k]);
      window_responses = responses;
      measured_at0 = t;
      phase = 1;
    } else if (phase == 1 && t >= window_end) {
      cpu1 = own_cpu_us();
      for (int k = 0; k < process_count; k++) server1[k] = process_cpu_us(pids[k]);
      window_responses = responses - window_responses;
      measured_at1 = t;
      phase = 2;
    }
    if (t >= next_timeout_check) {
      next_timeout_check = t + 50;
      for (int i = 0; i < in_flight; i++) {
        if (slots[i].busy && t - slots[i].sent_at > timeout) {
          lost++;
          SEND(i);
        }
      }
    }
  }
  double seconds = (measured_at1 - measured_at0) / 1e3;
  double used[MAX_PROCESSES];
  for (int k = 0; k < process_count; k++) used[k] = server0[k] < 0 || server1[k] < 0 ? -1.0 : server1[k] - server0[k];
  printf("{\"inFlight\":%d,\"responses\":%ld,\"seconds\":%.6f,\"generatorCpuMicros\":%.0f,\"serverCpuMicros\":%.0f,\"processCpuMicros\":[",
         in_flight, window_responses, seconds, cpu1 - cpu0, used[0]);
  for (int k = 0; k < process_count; k++) printf("%s%.0f", k ? "," : "", used[k]);
  printf("],\"errors\":%ld,\"lost\":%ld,\"stale\":%ld,\"sendFailures\":%ld,\"emptyAcks\":%ld,\"separate\":%ld,\"exhausted\":%s,\"recordsUsed\":%zu}\n",
         errors, lost, stale, send_failures, empty_acks, separate, exhausted ? "true" : "false", reuse ? (size_t)0 : next_record);
  return 0;
}
