#pragma once
/*
 * kek-rotate: `trstctl kek rotate --new-file PATH`, the KEK rotation of issue 5. Every
 * sealed value in the database (sealed_keys.sealed: the audit and CA keys;
 * secret_versions.sealed: secret values) gets its data key re-wrapped under the new KEK;
 * value ciphertexts are not touched. Run it with every server stopped, the configuration
 * still naming the old KEK (TRSTCTL_SECRETS_KEK_FILE); afterwards point that variable at
 * the new file. An interrupted rotation is finished by running the same command again.
 */

struct cfg;

/* argv[0] is "kek". Prints what was re-wrapped per table; returns the exit status (0, 1 on
 * failure, 2 on a usage error). */
int kek_rotate_cli(int argc, char **argv, const struct cfg *c);
