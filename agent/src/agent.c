#include "agent.h"

#include "log.h"

struct pyro_agent pyro_agent;
bool pyro_log_verbose;
