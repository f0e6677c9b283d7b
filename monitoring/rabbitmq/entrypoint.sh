#!/bin/sh
# The broker's entrypoint in compose.yml: writes the definitions RabbitMQ imports at boot
# (definitions.json beside this file, mounted as the template) with the passwords from the
# environment (the stack's .env), then runs the image's own entrypoint with its command
# ("$@": docker-entrypoint.sh rabbitmq-server).
#
# definitions.json holds no secret: its users' passwords are the placeholders
# @RABBITMQ_PASSWORD@ and @RABBITMQ_ADMIN_PASSWORD@. The file written here holds them, in a
# tmpfs (compose.yml), readable by the broker's user only.
#
# USERSVC_DEFINITIONS_TEMPLATE and USERSVC_DEFINITIONS move the two files (for the tests).
set -eu

template="${USERSVC_DEFINITIONS_TEMPLATE:-/etc/rabbitmq/usersvc/definitions.json}"
written="${USERSVC_DEFINITIONS:-/run/usersvc/definitions.json}"

for name in RABBITMQ_PASSWORD RABBITMQ_ADMIN_PASSWORD; do
    eval "value=\${$name:-}"
    case "$value" in
    "")
        echo "usersvc: $name is not set (see .env.example)" >&2
        exit 2
        ;;
    *[!A-Za-z0-9._~-]*)
        # It goes into the service's AMQP URL and into JSON as it is.
        echo "usersvc: $name: use letters, digits and . _ ~ - only" >&2
        exit 2
        ;;
    esac
done

umask 077
mkdir -p "$(dirname "$written")"
sed -e "s/@RABBITMQ_PASSWORD@/$RABBITMQ_PASSWORD/g" \
    -e "s/@RABBITMQ_ADMIN_PASSWORD@/$RABBITMQ_ADMIN_PASSWORD/g" \
    "$template" >"$written.tmp"
mv "$written.tmp" "$written"
# The image's entrypoint runs the server as the rabbitmq user (gosu).
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$(dirname "$written")"
fi

exec "$@"
