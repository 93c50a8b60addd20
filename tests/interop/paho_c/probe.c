/*
 * A round trip with the Eclipse Paho C client's synchronous MQTTClient API, which reads
 * one MQTT packet per WebSocket frame: the reason Roost sends one packet per frame.
 *
 *   probe URI VERSION CLIENT_ID TOPIC [CAFILE]
 *
 * VERSION is 3 (MQTT 3.1), 4 (3.1.1) or 5. The probe publishes a retained QoS 1 message,
 * subscribes (SUBACK and the retained PUBLISH come back to back), then publishes QoS 1
 * to a topic it is subscribed to (PUBACK and its own PUBLISH come back to back), and
 * clears the retained message. It prints one line per step and exits 0 only if every
 * step got its answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTClient.h>

#define TIMEOUT_MS 8000L

static int v5;

static int fail(const char *step, int rc) {
    printf("FAIL %s rc=%d\n", step, rc);
    return 1;
}

static int publish(MQTTClient client, const char *topic, const char *payload, int retained) {
    MQTTClient_message message = MQTTClient_message_initializer;
    MQTTClient_deliveryToken token;
    message.payload = (void *)payload;
    message.payloadlen = (int)strlen(payload);
    message.qos = 1;
    message.retained = retained;
    int rc;
    if (v5) {
        MQTTResponse response = MQTTClient_publishMessage5(client, topic, &message, &token);
        rc = response.reasonCode;
        MQTTResponse_free(response);
    } else {
        rc = MQTTClient_publishMessage(client, topic, &message, &token);
    }
    if (rc != MQTTCLIENT_SUCCESS)
        return rc;
    /* Returns only once the PUBACK came. */
    return MQTTClient_waitForCompletion(client, token, TIMEOUT_MS);
}

static int expect(MQTTClient client, const char *topic, const char *payload, int retained) {
    char *name = NULL;
    int name_len = 0;
    MQTTClient_message *message = NULL;
    int rc = MQTTClient_receive(client, &name, &name_len, &message, TIMEOUT_MS);
    if (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED)
        return rc;
    if (message == NULL)
        return -100; /* timed out */
    int ok = strcmp(name, topic) == 0 && message->payloadlen == (int)strlen(payload)
             && memcmp(message->payload, payload, strlen(payload)) == 0
             && (message->retained != 0) == (retained != 0);
    MQTTClient_freeMessage(&message);
    MQTTClient_free(name);
    return ok ? MQTTCLIENT_SUCCESS : -101;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: probe URI VERSION CLIENT_ID TOPIC [CAFILE]\n");
        return 2;
    }
    const char *uri = argv[1];
    int version = atoi(argv[2]);
    const char *topic = argv[4];
    v5 = version == 5;
    char retained_topic[256], echo_topic[256], filter[256];
    snprintf(retained_topic, sizeof retained_topic, "%s/retained", topic);
    snprintf(echo_topic, sizeof echo_topic, "%s/echo", topic);
    snprintf(filter, sizeof filter, "%s/#", topic);

    MQTTClient client;
    MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
    create.MQTTVersion = v5 ? MQTTVERSION_5 : MQTTVERSION_DEFAULT;
    int rc = MQTTClient_createWithOptions(&client, uri, argv[3], MQTTCLIENT_PERSISTENCE_NONE,
                                          NULL, &create);
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("create", rc);

    MQTTClient_connectOptions conn = MQTTClient_connectOptions_initializer;
    MQTTClient_connectOptions conn5 = MQTTClient_connectOptions_initializer5;
    MQTTClient_connectOptions *options = v5 ? &conn5 : &conn;
    options->keepAliveInterval = 30;
    options->connectTimeout = 8;
    if (v5)
        options->cleanstart = 1;
    else {
        options->cleansession = 1;
        options->MQTTVersion = version == 3 ? MQTTVERSION_3_1 : MQTTVERSION_3_1_1;
    }
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    if (argc > 5) {
        ssl.trustStore = argv[5];
        options->ssl = &ssl;
    }
    if (v5) {
        MQTTResponse response = MQTTClient_connect5(client, options, NULL, NULL);
        rc = response.reasonCode;
        MQTTResponse_free(response);
    } else {
        rc = MQTTClient_connect(client, options);
    }
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("connect", rc);
    printf("connected\n");

    if ((rc = publish(client, retained_topic, "kept", 1)) != MQTTCLIENT_SUCCESS)
        return fail("retained publish", rc);

    if (v5) {
        MQTTResponse response = MQTTClient_subscribe5(client, filter, 1, NULL, NULL);
        rc = response.reasonCode == 1 ? MQTTCLIENT_SUCCESS : response.reasonCode;
        MQTTResponse_free(response);
    } else {
        rc = MQTTClient_subscribe(client, filter, 1);
    }
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("subscribe", rc);
    printf("subscribed\n");
    if ((rc = expect(client, retained_topic, "kept", 1)) != MQTTCLIENT_SUCCESS)
        return fail("retained message after SUBACK", rc);
    printf("retained received\n");

    if ((rc = publish(client, echo_topic, "hello", 0)) != MQTTCLIENT_SUCCESS)
        return fail("PUBACK of a QoS 1 publish to a subscribed topic", rc);
    printf("puback received\n");
    if ((rc = expect(client, echo_topic, "hello", 0)) != MQTTCLIENT_SUCCESS)
        return fail("own message", rc);
    printf("own message received\n");

    if ((rc = publish(client, retained_topic, "", 1)) != MQTTCLIENT_SUCCESS)
        return fail("clearing the retained message", rc);
    if (v5)
        MQTTClient_disconnect5(client, 1000, MQTTREASONCODE_SUCCESS, NULL);
    else
        MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client);
    printf("OK\n");
    return 0;
}
