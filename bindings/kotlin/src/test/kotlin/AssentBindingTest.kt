// Binding tests for Kotlin: the generated Kotlin, compiled with kotlinc, drives the real
// libassent_core through JNA. Each check must cross the FFI boundary: consent, ids,
// track/flush against a real HTTP server, errors as exceptions, and a Kotlin transport.
import com.sun.net.httpserver.HttpServer
import dev.assent.core.AssentClient
import dev.assent.core.AssentException
import dev.assent.core.ClientConfig
import dev.assent.core.HttpRequest
import dev.assent.core.HttpResponse
import dev.assent.core.HttpTransport
import dev.assent.core.normalizeUserId
import dev.assent.core.pseudonymizeUserId
import java.io.File
import java.net.InetSocketAddress
import java.nio.file.Files
import java.util.Base64
import java.util.zip.GZIPInputStream
import kotlin.system.exitProcess

var passed = 0
var failed = 0

fun check(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (e: Throwable) {
        failed++
        println("FAIL $name: $e")
    }
}

fun expect(cond: Boolean, what: String) {
    if (!cond) throw AssertionError(what)
}

inline fun <reified T : Throwable> expectThrows(block: () -> Unit) {
    try {
        block()
    } catch (e: Throwable) {
        if (e is T) return
        throw AssertionError("expected ${T::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${T::class.simpleName}, nothing thrown")
}

/** A collector stand-in on a random loopback port that records every batch body. */
class Recorder : AutoCloseable {
    val bodies = java.util.Collections.synchronizedList(mutableListOf<String>())
    val auths = java.util.Collections.synchronizedList(mutableListOf<String?>())
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
    val url: String

    init {
        server.createContext("/v1/batch") { ex ->
            var input = ex.requestBody
            if (ex.requestHeaders.getFirst("Content-Encoding") == "gzip") input = GZIPInputStream(input)
            val body = input.readBytes().toString(Charsets.UTF_8)
            bodies.add(body)
            auths.add(ex.requestHeaders.getFirst("Authorization"))
            val events = Regex("\"messageId\"").findAll(body).count()
            val answer = """{"accepted":$events,"duplicates":0,"rejected":[]}""".toByteArray()
            ex.sendResponseHeaders(200, answer.size.toLong())
            ex.responseBody.use { it.write(answer) }
        }
        server.start()
        url = "http://127.0.0.1:${server.address.port}"
    }

    override fun close() = server.stop(0)
}

fun config(url: String, dir: File, pepper: String? = null) = ClientConfig(
    collectorUrl = url,
    writeKey = "kt-write-key",
    storageDir = dir.absolutePath,
    appId = "com.example.kotlin",
    policyVersion = "2026-01",
    userIdPepper = pepper,
    flushAt = 1000u,
    flushIntervalMs = 3_600_000uL,
)

fun tempDir(): File = Files.createTempDirectory("assent-kt").toFile()

/** Reads the published vectors without a JSON library: the file is flat and regular. */
fun vectors(path: File): List<Map<String, String>> {
    fun unescape(s: String) = s.replace("\\t", "\t").replace("\\\"", "\"").replace("\\\\", "\\")
    val field = Regex("\"(pepper|input|normalized|output)\": \"((?:[^\"\\\\]|\\\\.)*)\"")
    return path.readText().split("{").drop(2).map { chunk ->
        field.findAll(chunk).associate { it.groupValues[1] to unescape(it.groupValues[2]) }
    }
}

fun main(args: Array<String>) {
    val vectorFile = File(args[0])

    check("published user id vectors hold through the binding") {
        val vs = vectors(vectorFile)
        expect(vs.size >= 5, "found ${vs.size} vectors")
        for (v in vs) {
            expect(normalizeUserId(v.getValue("input")) == v.getValue("normalized"), "normalize ${v["input"]}")
            expect(pseudonymizeUserId(v.getValue("pepper"), v.getValue("input")) == v.getValue("output"), "hmac ${v["input"]}")
        }
    }

    check("consent gates tracking and errors arrive as exceptions") {
        Recorder().use { rec ->
            AssentClient(config(rec.url, tempDir())).use { client ->
                expect(client.consent().needsPrompt, "prompt needed at first")
                expect(!client.track("Viewed", "{}"), "no consent, no event")
                expect(client.queuedCount() == 0uL, "nothing queued")
                expectThrows<AssentException.InvalidPurpose> { client.track("Viewed", "{}", "telepathy") }
                expectThrows<AssentException.InvalidJson> { client.track("Viewed", "not json") }
                expectThrows<AssentException.InvalidMethod> { client.setConsent(mapOf("analytics" to true), "maybe") }
                client.setConsent(mapOf("analytics" to true), "custom")
                val state = client.consent()
                expect(!state.needsPrompt && state.purposes["analytics"] == true && state.purposes["advertising"] == false, "$state")
                expect(client.track("Viewed", """{"page":1}"""), "tracked after consent")
            }
        }
        expectThrows<AssentException.InvalidArgument> { AssentClient(config("nope", tempDir())) }
    }

    check("ids are stable across restarts and reset rotates them") {
        val dir = tempDir()
        val first = AssentClient(config("http://127.0.0.1:9", dir)).use { it.pseudonymousId() }
        AssentClient(config("http://127.0.0.1:9", dir)).use { client ->
            expect(client.pseudonymousId() == first, "same id after restart")
            client.reset()
            expect(client.pseudonymousId() != first, "new id after reset")
        }
    }

    check("track and flush reach a real HTTP server, peppered and authenticated") {
        Recorder().use { rec ->
            AssentClient(config(rec.url, tempDir(), pepper = "assent-test-pepper-0001")).use { client ->
                client.setConsent(mapOf(), "accept_all")
                expect(client.identify("alice@example.com", """{"plan":"pro"}"""), "identify")
                expect(client.track("Order Completed", """{"total":42.5}""", "advertising"), "track")
                expect(client.screen("Checkout", ""), "screen")
                val result = client.flush()
                expect(result.accepted == 3u && result.remaining == 0uL, "$result")
                val body = rec.bodies.single()
                expect(body.contains("\"anonymousId\":\"${client.pseudonymousId()}\""), "anonymousId")
                expect(body.contains("1463b0a64dbadf0dab88b750e289e87e41603a8184375dd97a0c1f1a901af17c"), "peppered userId")
                expect(!body.contains("alice"), "no raw user id on the wire")
                expect(body.contains("\"method\":\"accept_all\""), "consent record")
                val basic = "Basic " + Base64.getEncoder().encodeToString("kt-write-key:".toByteArray())
                expect(rec.auths.single() == basic, "basic auth")
            }
        }
    }

    check("a transport written in Kotlin carries the uploads") {
        class Recording : HttpTransport {
            val seen = mutableListOf<HttpRequest>()
            var offline = false
            override fun post(request: HttpRequest): HttpResponse {
                if (offline) throw AssentException.Network("offline")
                seen.add(request)
                return HttpResponse(200u, null, """{"accepted":1,"duplicates":0,"rejected":[]}""".toByteArray())
            }
        }
        val transport = Recording()
        AssentClient.withTransport(config("https://collector.invalid", tempDir()), transport).use { client ->
            client.track("Login", "", "necessary")
            transport.offline = true
            expectThrows<AssentException.Network> { client.flush() }
            expect(client.queuedCount() == 1uL, "kept while offline")
            transport.offline = false
            expect(client.flush().accepted == 1u, "delivered")
            expect(transport.seen.single().url == "https://collector.invalid/v1/batch", "url")
        }
    }

    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
