// Pod traffic interception with iptables (what `pillion init-iptables` does): nat rules in
// our own chains, installed and removed as single iptables-restore transactions.
export {
  CHAINS, OWN_CHAINS, JUMPS, DEFAULT_INTERCEPT, InterceptOptions, parsePortList, chainRules,
  installRuleset, cleanupRuleset, ownState, Family,
} from './rules';
export {
  IptablesError, IptablesErrorCode, IptablesEnv, Runner, RunResult, spawnRunner, processEnv,
  listNat, installRules, cleanupRules, InstallResult, hasIp6tables,
} from './apply';
