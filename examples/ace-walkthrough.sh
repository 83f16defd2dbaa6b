# The AS and the resource server, in the background (Ctrl-C or kill %1 %2 to stop them).
coapsec as --config as.json --credentials as-credentials.json --bind 127.0.0.1:5688 &
coapsec serve --bind 127.0.0.1:5683 --ace rs.json &
for i in $(seq 50); do coapsec ping coap://127.0.0.1:5688 && coapsec ping coap://127.0.0.1:5683 && break; sleep 0.2; done

# Without a token: 4.01 with the AS Request Creation Hints (AS, audience, scope).
coapsec get coap://127.0.0.1:5683/hello --pretty

# Alice gets a token from the AS, posts it to /authz-info and reads over OSCORE.
coapsec get coap://127.0.0.1:5683/hello --ace-as coap://127.0.0.1:5688/token --credentials alice.json
coapsec put coap://127.0.0.1:5683/valve --payload 7 --ace-as coap://127.0.0.1:5688/token --credentials alice.json

# Bob may only read: his PUT is refused with 4.05, his GET works.
coapsec put coap://127.0.0.1:5683/valve --payload 3 --ace-as coap://127.0.0.1:5688/token --credentials bob.json
coapsec get coap://127.0.0.1:5683/valve --ace-as coap://127.0.0.1:5688/token --credentials bob.json
