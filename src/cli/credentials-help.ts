/**
 * What `--help` says about credentials (docs/security.md "CLI credentials"): every connecting
 * command's help ends with it, and `relais --help` too. Loads nothing: `relais --help` is quick.
 */
export const CREDENTIALS_HELP = `
Credentials (every command takes them the same way; a flag beats its RELAIS_* variable,
which beats the context, which beats the default):
  --context <name>              a saved broker and credentials (relais context add, select;
                                RELAIS_CONTEXT); without it, the selected context if any
  RELAIS_TOKEN=<token>          the identity's token (relais identity add), with --id <identity>;
                                from the environment, never on the command line (ps shows it)
  --token-file <file>           the same, read from a file (RELAIS_TOKEN_FILE)
  --cert <file> --key <file>    a client certificate over mqtts:// or wss:// (RELAIS_CERT, RELAIS_KEY);
                                its CN is the identity: give it as --id too
  --ca <file>                   the CA that signed the broker's certificate (RELAIS_CA)`;
