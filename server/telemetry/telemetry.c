/*
 * The reporter's pure parts: the bucket of a count, the report's JSON (jansson keeps the
 * insertion order, so the fields come out in the documented order), the platform names,
 * and the instance id file. Nothing here logs; the running reporter (telemetry-run.c)
 * does.
 */
#include "telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "crypto.h"

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

const char *telemetry_bucket(int64_t n)
{
	if (n <= 0)
		return "0";
	if (n <= 10)
		return "1-10";
	if (n <= 100)
		return "11-100";
	if (n <= 1000)
		return "101-1000";
	if (n <= 10000)
		return "1001-10000";
	return "10000+";
}

static bool printable(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int telemetry_report(const char *instance_id, const char *version, const char *os, const char *arch,
		     const struct telemetry_counts *c, char **ret_json)
{
	char id[TELEMETRY_ID_LEN + 1];
	json_t *o;
	char *s;

	if (!crypto_uuid_valid(instance_id) || !printable(version) || !printable(os) ||
	    !printable(arch) || !c || !ret_json)
		return -EINVAL;
	for (size_t i = 0; i <= TELEMETRY_ID_LEN; i++)
		id[i] = (char)(instance_id[i] >= 'A' && instance_id[i] <= 'F' ?
				       instance_id[i] - 'A' + 'a' :
				       instance_id[i]);
	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "schema", TELEMETRY_SCHEMA,
		      "instance_id", id, "version", version, "os", os, "arch", arch,
		      "credential_buckets", "identities", telemetry_bucket(c->identities),
		      "certificates", telemetry_bucket(c->certificates), "secrets",
		      telemetry_bucket(c->secrets));
	if (!o)
		return -ENOMEM;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	*ret_json = s;
	return 0;
}

int telemetry_platform(char *ret_os, size_t os_len, char *ret_arch, size_t arch_len)
{
	struct utsname u;
	size_t i;

	if (uname(&u) < 0)
		return -errno;
	for (i = 0; u.sysname[i] && i + 1 < os_len; i++)
		ret_os[i] = (char)(u.sysname[i] >= 'A' && u.sysname[i] <= 'Z' ? u.sysname[i] + 32 :
										u.sysname[i]);
	ret_os[i] = 0;
	snprintf(ret_arch, arch_len, "%s", u.machine);
	return 0;
}

/* Reads an existing id: 0, -ENOENT (no file), or -EBADMSG/-errno with a message. */
static int read_id(const char *path, char ret_id[TELEMETRY_ID_LEN + 1], char *err, size_t errlen)
{
	char buf[TELEMETRY_ID_LEN + 4];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT :
					 fail(err, errlen, -errno,
					      "cannot read the instance id "
					      "file %s: %s",
					      path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return fail(err, errlen, -EIO, "cannot read the instance id file %s: %s", path,
			    strerror(errno));
	buf[n] = 0;
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	if (n != TELEMETRY_ID_LEN || !crypto_uuid_valid(buf))
		return fail(err, errlen, -EBADMSG,
			    "the instance id file %s does not hold a UUID; fix or remove it", path);
	memcpy(ret_id, buf, TELEMETRY_ID_LEN + 1);
	return 0;
}

/* Creates the folder of path (one level, 0700) when missing. */
static int make_folder(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int r = 0;

	if (!copy)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (mkdir(dirname(copy), 0700) < 0 && errno != EEXIST)
		r = fail(err, errlen, -errno, "cannot create the folder of %s: %s", path,
			 strerror(errno));
	free(copy);
	return r;
}

/* Writes a new id to a private temporary file and links it in place (never replaces). */
static int create_id(const char *path, char *err, size_t errlen)
{
	char id[TELEMETRY_ID_LEN + 2], *tmp = NULL;
	int fd, r;

	if (crypto_uuid_v4(id) < 0)
		return fail(err, errlen, -EIO, "cannot make a random instance id");
	strcat(id, "\n");
	if (asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) < 0)
		return fail(err, errlen, -ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = fail(err, errlen, -errno, "cannot create the instance id file %s: %s", path,
			 strerror(errno));
		free(tmp);
		return r;
	}
	r = write(fd, id, strlen(id)) == (ssize_t)strlen(id) && fsync(fd) == 0 ? 0 : -EIO;
	if (close(fd) < 0)
		r = -EIO;
	if (r == 0 && link(tmp, path) < 0 && errno != EEXIST) /* EEXIST: another server won */
		r = -errno;
	if (r < 0)
		fail(err, errlen, r, "cannot create the instance id file %s: %s", path,
		     strerror(-r));
	unlink(tmp);
	free(tmp);
	return r;
}

int telemetry_instance_id(const char *path, char ret_id[TELEMETRY_ID_LEN + 1], char *err,
			  size_t errlen)
{
	int r;

	if (!path || !*path || !ret_id)
		return fail(err, errlen, -EINVAL, "no instance id file");
	r = read_id(path, ret_id, err, errlen);
	if (r != -ENOENT)
		return r;
	r = make_folder(path, err, errlen);
	if (r == 0)
		r = create_id(path, err, errlen);
	return r < 0 ? r : read_id(path, ret_id, err, errlen);
}
